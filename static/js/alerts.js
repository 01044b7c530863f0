// Alerts: GET /api/alerts (raised by continuous detection), newest first, filtered by status and
// severity; each can be acknowledged or closed (POST .../acknowledge, .../close), or asked about.
// Admins also edit the alert policies (policies.js) and the scheduled reports (schedules.js).
import { getJSON } from "./api.js";
import { askInNewConversation } from "./chat.js";
import { clear, dateTime, el, number } from "./format.js";
import { questionFor } from "./anomalies.js";
import { initPolicies, showPolicies } from "./policies.js";
import { initSchedules, showSchedules } from "./schedules.js";

const STATUS = { new: "Nouvelle", acknowledged: "Prise en compte", closed: "Close" };
const SEVERITY = { high: "élevée", medium: "moyenne", low: "faible" };

const $ = (id) => document.getElementById(id);

async function act(alert, verb) {
  await getJSON(`/api/alerts/${encodeURIComponent(alert.id)}/${verb}`, { method: "POST", json: {} });
  await showAlerts();
}

function card(alert) {
  const node = el("article", { class: `finding severity-${alert.severity}`, "data-alert": alert.id });
  node.append(el("h3", { text: alert.title }));
  node.append(el("p", {
    class: "muted small",
    text: `${alert.type_label} · gravité ${SEVERITY[alert.severity] || alert.severity} · ${STATUS[alert.status] || alert.status}`,
  }));
  node.append(el("p", { text: alert.explanation }));
  const facts = el("dl", { class: "facts" });
  const add = (term, value) => {
    if (value) facts.append(el("dt", { text: term }), el("dd", { text: value }));
  };
  add("Utilisateurs", (alert.users || []).join(", "));
  add("Machines", (alert.hosts || []).join(", "));
  add("Période", `${dateTime(alert.start)} – ${dateTime(alert.end)}`);
  add("Événements", number(alert.event_count));
  node.append(facts);
  const actions = el("div", { class: "finding-actions" });
  if (alert.status === "new") {
    actions.append(el("button", { type: "button", class: "btn", text: "Prendre en compte",
      onclick: () => act(alert, "acknowledge") }));
  }
  if (alert.status !== "closed") {
    actions.append(el("button", { type: "button", class: "btn btn-quiet", text: "Clore",
      onclick: () => act(alert, "close") }));
  }
  const finding = { type: alert.type, dbusername: (alert.users || [])[0], userhost: (alert.hosts || [])[0],
    start: alert.start, end: alert.end };
  actions.append(el("button", { type: "button", class: "btn btn-quiet", text: "Demander au chat",
    onclick: () => askInNewConversation(questionFor(finding)) }));
  node.append(actions);
  return node;
}

/** The view opens: the alerts, and for admins the policies and scheduled reports. */
export function openAlerts() {
  showPolicies();
  showSchedules();
  return showAlerts();
}

export async function showAlerts() {
  const status = $("alerts-status-filter").value;
  const list = $("alerts-list");
  $("alerts-status").textContent = "Chargement…";
  try {
    const query = status ? `?status=${status}` : "";
    const found = await getJSON(`/api/alerts${query}`);
    clear(list);
    found.alerts.forEach((a) => list.append(card(a)));
    $("alerts-status").textContent = found.total
      ? `${number(found.total)} alerte${found.total > 1 ? "s" : ""}`
      : "Aucune alerte.";
  } catch (err) {
    $("alerts-status").textContent = err.message || "Les alertes n'ont pas pu être lues.";
  }
}

export function initAlerts() {
  initPolicies();
  initSchedules();
  $("alerts-status-filter").addEventListener("change", () => showAlerts());
}
