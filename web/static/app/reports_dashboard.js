// The reports dashboard: bar charts of one level (ECharts, served from npm); a tap on a bar
// opens the level below (subdistrict → community → grid). Data: GET /api/dashboard.
(function () {
  "use strict";
  var charts = {};
  var trail = [{level: "subdistrict", id: null, label: GA.t("dashboard.subdistrict")}];

  function chart(id) {
    if (!charts[id]) { charts[id] = echarts.init(document.getElementById(id)); }
    return charts[id];
  }

  function crumbs() {
    var nav = document.getElementById("ga-crumbs");
    nav.textContent = "";
    trail.forEach(function (step, i) {
      var el = document.createElement(i < trail.length - 1 ? "a" : "span");
      el.textContent = step.label;
      if (i < trail.length - 1) {
        el.href = "#";
        el.addEventListener("click", function (ev) {
          ev.preventDefault();
          trail = trail.slice(0, i + 1);
          load();
        });
      }
      nav.appendChild(el);
    });
  }

  // Layout: the title on the first line, the legend (when there are several series) on its
  // own line below it, the bars below both, so the three never overlap whatever the width.
  // Every chart counts whole things (households, problems, committees): ticks are integers.
  var TITLE_H = 32, LEGEND_H = 28;  // each with its padding (5 px above and below)

  function bars(id, title, names, series, onClick) {
    var c = chart(id);
    var many = series.length > 1;
    c.off("click");
    c.setOption({
      title: {text: title, left: 0, top: 0, textStyle: {fontSize: 14, lineHeight: 18}},
      tooltip: {trigger: "axis"},
      legend: {show: many, type: "scroll", left: 0, right: 0, top: TITLE_H, height: LEGEND_H},
      grid: {top: TITLE_H + (many ? LEGEND_H : 0) + 16, bottom: 80, left: 50, right: 20},
      xAxis: {type: "category", data: names, axisLabel: {rotate: 40}},
      yAxis: {type: "value", minInterval: 1},
      series: series.map(function (s) { return {type: "bar", name: s.name, data: s.data}; })
    }, true);
    if (onClick) { c.on("click", function (p) { onClick(p.dataIndex); }); }
  }

  function draw(data) {
    var items = data.items;
    var label = function (it) {
      return it.name || it.code || GA.t("patrol_page.category." + it.category);
    };
    var names = items.map(label);
    var drill = data.child_level ? function (i) {
      trail.push({level: data.child_level, id: items[i].id, label: names[i]});
      load();
    } : null;
    var problems = [
      {name: GA.t("dashboard.problems_open"), data: items.map(function (it) { return it.problems_open; })},
      {name: GA.t("dashboard.problems_closed"), data: items.map(function (it) { return it.problems_closed; })}
    ];
    var hh = document.getElementById("ga-chart-households");
    var stars = document.getElementById("ga-chart-stars");
    if (data.level === "grid") {
      hh.hidden = true; stars.hidden = true;
    } else {
      hh.hidden = false;
      bars("ga-chart-households", GA.t("dashboard.households") + " · " + GA.t("dashboard.drill"),
           names, [{name: GA.t("dashboard.households"),
                    data: items.map(function (it) { return it.households; })}], drill);
    }
    bars("ga-chart-problems", GA.t("dashboard.problems"), names, problems, drill);
    if (data.level === "subdistrict") {
      stars.hidden = false;
      var counts = [5, 4, 3, 2, 1].map(function (s) {
        return items.filter(function (it) { return it.stars === s; }).length;
      });
      counts.push(items.filter(function (it) { return it.stars === null; }).length);
      bars("ga-chart-stars", GA.t("dashboard.stars"),
           ["★★★★★", "★★★★", "★★★", "★★", "★", GA.t("dashboard.unrated")],
           [{name: GA.t("dashboard.stars"), data: counts}], null);
    } else {
      stars.hidden = true;
    }
    Object.keys(charts).forEach(function (k) { charts[k].resize(); });
    document.getElementById("ga-main").dataset.level = data.level;
  }

  async function load() {
    crumbs();
    var step = trail[trail.length - 1];
    var url = "/api/dashboard?level=" + step.level + (step.id ? "&id=" + step.id : "");
    var res = await GA.api("GET", url);
    if (!res.ok) { GA.notice(res.message, "error"); return; }
    draw(res.data);
  }

  window.addEventListener("resize", function () {
    Object.keys(charts).forEach(function (k) { charts[k].resize(); });
  });
  load();
})();
