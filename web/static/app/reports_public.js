// The public survey page (no login): send the answer or the report, show the server's message.
(function () {
  "use strict";
  var body = document.body;
  var token = body.dataset.token;
  // the page's language (its 中文/English link): the answers' messages come in it too
  var lang = "?lang=" + encodeURIComponent(body.dataset.lang || "zh");
  var notice = document.getElementById("ga-public-notice");

  function show(text, isError) {
    notice.textContent = text;
    notice.className = "ga-public-notice" + (isError ? " error" : "");
    notice.hidden = false;
  }

  function send(form, url, payload) {
    var button = form.querySelector("button");
    button.disabled = true;
    show(body.dataset.sending, false);
    fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                body: JSON.stringify(payload), credentials: "omit"})
      .then(function (r) {
        return r.json().then(function (data) { return {ok: r.ok, data: data}; });
      })
      .then(function (res) {
        show(res.data.message || "", !res.ok);
        if (res.ok) { form.reset(); }
      })
      .catch(function () { show(body.dataset.failed, true); })
      .then(function () { button.disabled = false; });
  }

  var survey = document.getElementById("ga-survey");
  if (survey) {
    survey.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var scores = {};
      ["overall", "service", "environment", "safety"].forEach(function (q) {
        var picked = survey.querySelector("input[name=" + q + "]:checked");
        scores[q] = picked ? parseInt(picked.value, 10) : 0;
      });
      send(survey, "/api/public/sheets/" + encodeURIComponent(token) + "/answer" + lang,
           {code: survey.querySelector("#ga-code").value.trim().toUpperCase(), scores: scores});
    });
  }
  var problem = document.getElementById("ga-problem");
  if (problem) {  // not on a sheet whose round is over
    problem.addEventListener("submit", function (ev) {
      ev.preventDefault();
      send(problem, "/api/public/sheets/" + encodeURIComponent(token) + "/problem" + lang,
           {category: problem.querySelector("select").value,
            description: problem.querySelector("textarea").value});
    });
  }
})();
