// Login for tablets: the server answers with a token and an HttpOnly session cookie, so the
// pages' requests are sent as this user. Then to the page that asked for the login, or to
// the role's home page. Texts come from the page (data-*), in the user's language.
(function () {
  "use strict";
  const form = document.getElementById("ga-login");
  const message = document.getElementById("ga-login-message");
  const params = new URLSearchParams(window.location.search);
  // only a path on this server, never an address elsewhere: checked on the path the
  // browser will really go to ("/.//host" normalises to "//host", "/\\host" to a host)
  function safeNext(raw) {
    if (!raw) return null;
    try {
      const target = new URL(raw, window.location.origin);
      const path = target.pathname;
      const ours =
        target.origin === window.location.origin && !path.startsWith("//") && !path.startsWith("/\\");
      return ours ? path + target.search + target.hash : null;
    } catch (err) {
      return null;
    }
  }
  const next = safeNext(params.get("next"));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = form.dataset.busy;
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
      const data = await r.json().catch(() => ({}));
      if (r.ok) {
        message.textContent = form.dataset.done;
        message.className = "ok";
        window.location.assign(next || safeNext(data.home) || "/");
        return;
      }
      message.textContent = r.status === 401 ? form.dataset.wrong : data.message || form.dataset.wrong;
      message.className = "error";
    } catch (err) {
      message.textContent = form.dataset.offline;
      message.className = "error";
    }
  });

  const lang = document.getElementById("ga-login-lang");
  if (lang) {
    lang.addEventListener("click", () => {
      document.cookie = "ga_lang=" + lang.dataset.to + "; path=/; max-age=31536000; SameSite=Strict";
      window.location.reload();
    });
  }
})();
