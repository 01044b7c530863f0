// Charts when looking beats reading: a line over time, bars for a distribution or a ranking, a
// weekday × hour heat map; nothing for a single figure. Chart.js (vendored) draws lines and bars; the
// heat map is an HTML table coloured by classes, readable by screen readers.
import { bucketLabel, cell, columnLabel, el, number, WEEKDAYS } from "./format.js";

const TIME = new Set(["hour", "day", "week", "month"]);
// The figure a chart shows, by preference: a share's percent, a duration's mean, else the count.
const VALUE_COLUMNS = ["percent", "count", "distinct", "avg_s", "sessions", "events", "part"];
const MAX_BARS = 20;
const COLOR = "#1d4f91";
const COLOR_FILL = "rgba(29, 79, 145, 0.15)";

/** Which chart suits an answer: {kind: "line"|"bar"|"heatmap", ...} or null. */
export function chooseChart(response) {
  const data = response && response.data;
  const plan = response && response.plan;
  if (!data || !plan || !Array.isArray(data.rows) || data.rows.length < 2) return null;
  if (plan.detail || plan.measure === "anomalies" || plan.compare) return null;
  const groups = plan.group_by || [];
  const columns = data.columns;
  const name = VALUE_COLUMNS.find((c) => columns.includes(c));
  if (!name) return null;
  const value = columns.indexOf(name);
  if (groups.length === 2 && groups.includes("weekday") && groups.includes("hour")) {
    return { kind: "heatmap", weekday: columns.indexOf("weekday"), hour: columns.indexOf("hour"), value };
  }
  if (groups.length !== 1) return null;
  const key = columns.indexOf(groups[0]);
  if (key < 0) return null;
  if (TIME.has(groups[0])) return { kind: "line", key, value, bucket: groups[0] };
  return { kind: "bar", key, value, bucket: groups[0] };
}

function describe(spec, data, title) {
  const rows = data.rows;
  const top = [...rows].sort((a, b) => (b[spec.value] ?? 0) - (a[spec.value] ?? 0)).slice(0, 3);
  const tops = top.map((r) => `${cell(r[spec.key], data.columns[spec.key])} (${number(r[spec.value])})`);
  return `${title}. ${rows.length} valeurs ; les plus élevées : ${tops.join(", ")}.`;
}

/**
 * A Chart.js chart in a figure. `onPick(index)` (optional) is called when a bar or point is clicked.
 */
export function drawChart(kind, { labels, values, label, title, description, onPick, caption = true }) {
  const figure = el("figure", { class: `chart chart-${kind}` });
  const box = el("div", { class: kind === "bar" && labels.length > 8 ? "chart-box chart-box-tall" : "chart-box" });
  const canvas = el("canvas", { role: "img", "aria-label": description });
  canvas.textContent = description;
  box.append(canvas);
  figure.append(el("figcaption", { text: title, class: caption ? null : "visually-hidden" }), box);
  const Chart = window.Chart;
  if (!Chart) {
    figure.append(el("p", { class: "muted", text: "Graphique indisponible." }));
    return figure;
  }
  const horizontal = kind === "bar" && labels.length > 6;
  // Chart.js measures its box: draw once the figure is in the page.
  requestAnimationFrame(() => {
    const chart = new Chart(canvas, {
      type: kind,
      data: {
        labels,
        datasets: [{
          label,
          data: values,
          borderColor: COLOR,
          backgroundColor: kind === "line" ? COLOR_FILL : COLOR,
          fill: kind === "line",
          tension: 0,
          pointRadius: labels.length > 60 ? 0 : 3,
        }],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        locale: "fr-FR",
        plugins: { legend: { display: false }, tooltip: { enabled: true } },
        scales: {
          x: { ticks: { color: "#222", autoSkip: true, maxRotation: 60 }, beginAtZero: horizontal },
          y: { ticks: { color: "#222", autoSkip: !horizontal }, beginAtZero: !horizontal },
        },
        onClick: onPick ? (_event, elements) => { if (elements.length) onPick(elements[0].index); } : undefined,
        onHover: onPick ? (event, elements) => {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        } : undefined,
      },
    });
    figure.chart = chart;
  });
  return figure;
}

function heatClass(value, max) {
  if (!value) return "heat-0";
  return `heat-${Math.min(5, 1 + Math.floor((value / max) * 5))}`;
}

/** Weekday × hour heat map as a table: rows lundi…dimanche, columns 0 h…23 h. */
export function heatMap(data, spec, title) {
  const grid = Array.from({ length: 7 }, () => Array(24).fill(0));
  for (const row of data.rows) {
    const d = row[spec.weekday];
    const h = row[spec.hour];
    if (d >= 1 && d <= 7 && h >= 0 && h <= 23) grid[d - 1][h] += row[spec.value] || 0;
  }
  const max = Math.max(1, ...grid.flat());
  const figure = el("figure", { class: "chart chart-heatmap" });
  figure.append(el("figcaption", { text: title }));
  const table = el("table", { class: "heatmap" });
  table.append(el("caption", { class: "visually-hidden", text: `${title} (jour de la semaine × heure)` }));
  const head = el("tr", {}, el("th", { scope: "col", text: "" }));
  for (let h = 0; h < 24; h += 1) head.append(el("th", { scope: "col", text: `${h}` }));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  grid.forEach((hours, d) => {
    const tr = el("tr", {}, el("th", { scope: "row", text: WEEKDAYS[d].slice(0, 3) }));
    hours.forEach((v, h) => {
      tr.append(el("td", {
        class: heatClass(v, max),
        title: `${WEEKDAYS[d]} ${h} h : ${number(v)}`,
        "aria-label": `${WEEKDAYS[d]} ${h} h : ${number(v)}`,
      }));
    });
    body.append(tr);
  });
  table.append(body);
  const legend = el("p", { class: "heat-legend muted" }, "Moins ",
    ...[0, 1, 2, 3, 4, 5].map((i) => el("span", { class: `heat-swatch heat-${i}`, "aria-hidden": "true" })),
    ` Plus (max. ${number(max)})`);
  figure.append(el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": title }, table), legend);
  return figure;
}

/** The chart of a chat answer, or null when a chart would not help. */
export function answerChart(response, onPick) {
  const spec = chooseChart(response);
  if (!spec) return null;
  const data = response.data;
  const valueName = columnLabel(data.columns[spec.value]);
  const title = `${response.plan.text ? response.plan.text.charAt(0).toUpperCase() + response.plan.text.slice(1) : valueName}`;
  if (spec.kind === "heatmap") return heatMap(data, spec, title);
  let rows = data.rows;
  if (spec.kind === "bar" && rows.length > MAX_BARS) rows = rows.slice(0, MAX_BARS);
  const labels = rows.map((r) => bucketLabel(r[spec.key], data.columns[spec.key]));
  const values = rows.map((r) => r[spec.value] ?? 0);
  const shown = spec.kind === "bar" && data.rows.length > MAX_BARS
    ? `${title} (les ${MAX_BARS} premiers)` : title;
  return drawChart(spec.kind, {
    labels, values, label: valueName, title: shown,
    description: describe(spec, { ...data, rows }, shown),
    onPick: onPick ? (i) => onPick(rows[i][spec.key], data.columns[spec.key]) : null,
  });
}
