// Login for tablets: the server answers with a token and an HttpOnly session cookie, so the
// map pages' edits are sent as this user. Then back to the page that asked for the login.
(function () {
  "use strict";
  const form = document.getElementById("ga-login");
  const message = document.getElementById("ga-login-message");
  const params = new URLSearchParams(window.location.search);
  let next = params.get("next") || "/map/groups";
  // only a path on this server, never an address elsewhere: checked on the path the
  // browser will really go to ("/.//host" normalises to "//host", "/\\host" to a host)
  try {
    const target = new URL(next, window.location.origin);
    const path = target.pathname;
    const ours =
      target.origin === window.location.origin &&
      !path.startsWith("//") &&
      !path.startsWith("/\\");
    next = ours ? path + target.search + target.hash : "/map/groups";
  } catch (err) {
    next = "/map/groups";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "正在登录…";
    message.className = "";
    const body = {
      username: form.elements.username.value.trim(),
      password: form.elements.password.value,
    };
    try {
      const r = await fetch("/api/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      if (r.ok) {
        message.textContent = "已登录，正在返回…";
        message.className = "ok";
        window.location.assign(next);
        return;
      }
      const data = await r.json().catch(() => ({}));
      message.textContent =
        r.status === 401 ? "用户名或密码错误" : "未能登录：" + (data.detail || "HTTP " + r.status);
      message.className = "error";
    } catch (err) {
      message.textContent = "无法连接服务器，请稍后再试";
      message.className = "error";
    }
  });
})();
