// Anomalies: findings of GET /api/audit/anomalies by severity, with their evidence, over a chosen
// window; "Demander au chat" opens the chat on the question that shows the events behind a finding.
import { getJSON } from "./api.js";
import { askInNewConversation } from "./chat.js";
import { cell, clear, columnLabel, dateTime, el, frenchDay, frenchHour, number } from "./format.js";
import { windowPicker } from "./window.js";

const SEVERITIES = [
  ["high", "Gravité élevée"],
  ["medium", "Gravité moyenne"],
  ["low", "Gravité faible"],
];
const TYPES = {
  failed_logon_burst: "Rafale de connexions échouées",
  off_hours_activity: "Activité hors heures",
  volume_spike: "Pic de volume",
  sensitive_action: "Action sensible",
  privileged_account: "Compte privilégié",
  new_host_or_program: "Nouvelle machine ou nouveau programme",
  mass_dml: "Modifications de masse",
};

let picker = null;
let loading = 0;

/** The chat question that shows what lies behind a finding. */
export function questionFor(anomaly) {
  const day = anomaly.start ? frenchDay(anomaly.start) : null;
  const sameDay = anomaly.start && anomaly.end && frenchDay(anomaly.start) === frenchDay(anomaly.end);
  let hours = "";
  if (sameDay) {
    const from = frenchHour(anomaly.start);
    const to = Math.min(24, frenchHour(anomaly.end) + 1);
    if (to - from < 24) hours = ` entre ${from}h et ${to}h`;
  }
  const when = day ? (sameDay ? ` le ${day}${hours}` : ` du ${day} au ${frenchDay(anomaly.end)}`) : "";
  if (anomaly.type === "failed_logon_burst" && anomaly.dbusername) {
    return `Montre les connexions échouées de ${anomaly.dbusername}${when}`;
  }
  if (anomaly.dbusername) return `Qu'a fait ${anomaly.dbusername}${when} ?`;
  if (anomaly.type === "failed_logon_burst") return `Montre les connexions échouées${when}`;
  if (anomaly.userhost) return `Événements depuis ${anomaly.userhost}${when}`;
  return `Événements${when}`;
}

function evidenceValue(key, value) {
  if (Array.isArray(value)) {
    if (value.length && typeof value[0] === "object" && value[0] !== null) {
      const columns = [...new Set(value.flatMap((v) => Object.keys(v)))];
      const table = el("table", { class: "data-table evidence-table" },
        el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col", text: columnLabel(c) })))),
        el("tbody", {}, value.map((row) => el("tr", {}, columns.map((c) => el("td", { text: cell(row[c], c) }))))));
      return el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": columnLabel(key) }, table);
    }
    return value.map((v) => cell(v, key)).join(", ") || "–";
  }
  if (value && typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k} : ${cell(v, k)}`).join(" ; ");
  }
  return cell(value, key);
}

function finding(anomaly) {
  const card = el("article", { class: `finding severity-${anomaly.severity}` });
  card.append(el("h3", { text: anomaly.title }));
  card.append(el("p", { class: "finding-type muted small", text: TYPES[anomaly.type] || anomaly.type }));
  card.append(el("p", { text: anomaly.explanation }));
  const facts = el("dl", { class: "facts" });
  const add = (term, value) => {
    if (value === null || value === undefined || value === "") return;
    facts.append(el("dt", { text: term }), el("dd", { text: value }));
  };
  add("Utilisateur", anomaly.dbusername);
  add("Machine", anomaly.userhost);
  add("Début", anomaly.start ? dateTime(anomaly.start) : null);
  add("Fin", anomaly.end ? dateTime(anomaly.end) : null);
  add("Événements", anomaly.count !== undefined ? number(anomaly.count) : null);
  card.append(facts);
  const evidence = anomaly.evidence || {};
  if (Object.keys(evidence).length) {
    const list = el("dl", { class: "evidence" });
    for (const [key, value] of Object.entries(evidence)) {
      list.append(el("dt", { text: columnLabel(key) }), el("dd", {}, evidenceValue(key, value)));
    }
    card.append(el("details", {}, el("summary", { text: "Voir les preuves" }), list));
  }
  const question = questionFor(anomaly);
  card.append(el("button", {
    type: "button", class: "btn btn-primary ask-about", text: "Demander au chat",
    "aria-label": `Demander au chat : ${question}`, dataset: { question },
    onclick: () => askInNewConversation(question),
  }));
  return card;
}

async function load(window) {
  const status = document.getElementById("anomalies-status");
  const summary = clear(document.getElementById("anomalies-summary"));
  const list = clear(document.getElementById("anomalies-list"));
  const ticket = ++loading;
  status.textContent = `Recherche des anomalies sur ${window.label}…`;
  try {
    const report = await getJSON(`/api/audit/anomalies?${window.query}`);
    if (ticket !== loading) return;
    const bySeverity = report.by_severity || {};
    status.textContent = `${number(report.count)} anomalie${report.count > 1 ? "s" : ""} sur ${window.label}.`;
    summary.append(el("ul", { class: "severity-counts" }, SEVERITIES.map(([key, label]) =>
      el("li", { class: `badge severity-${key}` }, `${label} : ${number(bySeverity[key] || 0)}`))));
    for (const [key, label] of SEVERITIES) {
      const items = (report.anomalies || []).filter((a) => a.severity === key);
      if (!items.length) continue;
      // Low-severity findings (routine night work, first uses) start folded.
      list.append(el("details", { class: "severity-group", open: key !== "low" },
        el("summary", {}, el("h2", { text: `${label} (${items.length})` })), items.map(finding)));
    }
    if (!report.count) list.append(el("p", { text: "Aucune anomalie sur cette période." }));
  } catch (err) {
    if (ticket === loading) status.textContent = err.message;
  }
}

export function showAnomalies() {
  if (!picker) picker = windowPicker(document.getElementById("anomalies-form"), load);
  picker.apply();
}
