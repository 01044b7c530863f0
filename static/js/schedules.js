// The scheduled reports of the Alertes view (admins): list with their latest runs, create, edit,
// enable or disable, delete, send now, and retry a run that failed for good, through
// /api/report-schedules. Built like the policy editor (policies.js), with the same helpers.
import { getJSON } from "./api.js";
import { deleteButton, formError, isAdmin, joined, list, saveItem, submitHandler } from "./editors.js";
import { WEEKDAYS, clear, dateTime, el, frenchDay, show } from "./format.js";

const BASE = "/api/report-schedules";
const STATUS = { sent: "envoyé", pending: "en attente", failed: "en échec" };
const MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
  "octobre", "novembre", "décembre"];
// the fields of PUT/POST /api/report-schedules (the rest of a stored schedule is the API's)
const FIELDS = ["name", "kind", "format", "frequency", "weekday", "day", "hour", "recipients", "dbusername",
  "object_schema", "objects", "enabled"];
const RUNS_SHOWN = 5;
const $ = (id) => document.getElementById(id);

let titles = {}; // report kind: French title
let editing = null; // the schedule being edited, or null for a new one

function status(message) {
  $("schedules-status").textContent = message;
}

/** The body of PUT/POST /api/report-schedules from a stored schedule. */
function bodyOf(schedule) {
  return Object.fromEntries(FIELDS.map((k) => [k, schedule[k]]));
}

/** « semaine 10 de 2025 », « mars 2025 », « envoi manuel ». */
function periodLabel(period) {
  let m = /^(\d{4})-W(\d{2})$/.exec(period);
  if (m) return `semaine ${Number(m[2])} de ${m[1]}`;
  m = /^(\d{4})-(\d{2})$/.exec(period);
  if (m) return `${MONTHS[Number(m[2]) - 1]} ${m[1]}`;
  return period.startsWith("manual-") ? "envoi manuel" : period;
}

function runRow(schedule, run) {
  const row = el("tr", { "data-run": run.id, class: run.status === "failed" ? "run-failed" : null });
  const attempts = `${run.attempts}${run.retried_by ? ` (relancé par ${run.retried_by})` : ""}`;
  row.append(
    el("td", { text: periodLabel(run.period) }),
    el("td", { text: `du ${frenchDay(run.start)} au ${frenchDay(run.end)}` }),
    el("td", { text: STATUS[run.status] || run.status }),
    el("td", { class: "num", text: attempts }),
    el("td", { text: run.last_error || "–" }),
  );
  const action = el("td");
  if (run.status === "failed") {
    const retry = el("button", { type: "button", class: "btn btn-small", text: "Relancer l'envoi" });
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      status(`Nouvel envoi de « ${schedule.name} » (${periodLabel(run.period)})…`);
      try {
        const done = await getJSON(
          `${BASE}/${encodeURIComponent(schedule.id)}/runs/${encodeURIComponent(run.id)}/retry`,
          { method: "POST" },
        );
        status(done.status === "sent"
          ? `Rapport « ${schedule.name} » (${periodLabel(run.period)}) envoyé.`
          : `Nouvel envoi de « ${schedule.name} » en échec, nouvel essai plus tard : ${done.last_error}`);
        await loadSchedules();
      } catch (err) {
        status(err.message);
        retry.disabled = false;
      }
    });
    action.append(retry);
  }
  row.append(action);
  return row;
}

function runsTable(schedule, runs) {
  if (!runs.length) return null;
  const table = el("table", { class: "data-table runs" });
  table.append(el("caption", { class: "small", text: "Derniers envois" }));
  const head = el("tr");
  for (const name of ["Période", "Fenêtre", "Statut", "Tentatives", "Erreur", "Action"]) {
    head.append(el("th", { scope: "col", text: name }));
  }
  table.append(el("thead", {}, head));
  table.append(el("tbody", {}, runs.slice(0, RUNS_SHOWN).map((r) => runRow(schedule, r))));
  return el("div", { class: "table-scroll" }, table);
}

function filtersText(s) {
  const parts = [["comptes", s.dbusername], ["schémas", s.object_schema], ["objets", s.objects]]
    .filter(([, values]) => values.length)
    .map(([label, values]) => `${label} : ${joined(values)}`);
  return parts.length ? `Filtres : ${parts.join(" ; ")}` : "Sans filtre.";
}

function item(s, runs) {
  const node = el("li", { "data-schedule": s.id });
  node.append(el("h3", { text: s.name }));
  const when = s.enabled && s.next_run_at ? `prochain envoi le ${dateTime(s.next_run_at)}` : "inactif";
  node.append(el("p", { class: "muted small",
    text: `${titles[s.kind] || s.kind} (${s.format.toUpperCase()}) · ${s.description} · ${when}` }));
  node.append(el("p", { class: "small", text: `Destinataires : ${joined(s.recipients)}` }));
  node.append(el("p", { class: "small", text: filtersText(s) }));
  const last = s.last_status
    ? `Dernier envoi : ${STATUS[s.last_status]} le ${dateTime(s.last_run_at)}${s.last_error ? ` (${s.last_error})` : ""}`
    : "Jamais envoyé.";
  node.append(el("p", { class: s.last_status === "failed" ? "error small" : "small", text: last }));
  const send = el("button", { type: "button", class: "btn", text: "Envoyer maintenant" });
  send.addEventListener("click", async () => {
    send.disabled = true;
    status(`Envoi de « ${s.name} »…`);
    try {
      const run = await getJSON(`${BASE}/${encodeURIComponent(s.id)}/send`, { method: "POST" });
      status(run.status === "sent"
        ? `Rapport « ${s.name} » envoyé.`
        : `Envoi de « ${s.name} » en échec, nouvel essai plus tard : ${run.last_error}`);
      await loadSchedules();
    } catch (err) {
      status(err.message);
      send.disabled = false;
    }
  });
  const actions = el("div", { class: "finding-actions" });
  actions.append(
    send,
    el("button", { type: "button", class: "btn", text: "Modifier", onclick: () => openForm(s) }),
    el("button", {
      type: "button", class: "btn btn-quiet", text: s.enabled ? "Désactiver" : "Activer",
      onclick: () => save({ ...bodyOf(s), enabled: !s.enabled }, s.id).catch((err) => status(err.message)),
    }),
    deleteButton(async () => {
      try {
        await getJSON(`${BASE}/${encodeURIComponent(s.id)}`, { method: "DELETE" });
        status(`Rapport programmé « ${s.name} » supprimé.`);
        await loadSchedules();
      } catch (err) {
        status(err.message);
      }
    }),
  );
  node.append(actions);
  const table = runsTable(s, runs);
  if (table) node.append(table);
  return node;
}

function fillSelect(select, options, value) {
  clear(select);
  for (const [key, label] of options) select.append(el("option", { value: key, text: label }));
  select.value = value;
}

/** Weekly: the weekday; monthly: the day of the month. */
function showTiming() {
  const weekly = $("schedule-frequency").value === "weekly";
  show($("schedule-weekday-field"), weekly);
  show($("schedule-day-field"), !weekly);
}

function openForm(schedule = null) {
  editing = schedule;
  const s = schedule || { name: "", enabled: true, kind: Object.keys(titles)[0], format: "pdf",
    frequency: "weekly", weekday: 0, day: 1, hour: 6, recipients: [], dbusername: [], object_schema: [],
    objects: [] };
  $("schedule-form-title").textContent = schedule ? `Modifier « ${schedule.name} »` : "Nouveau rapport programmé";
  $("schedule-name").value = s.name;
  $("schedule-enabled").checked = s.enabled;
  fillSelect($("schedule-kind"), Object.entries(titles), s.kind);
  $("schedule-format").value = s.format;
  $("schedule-frequency").value = s.frequency;
  $("schedule-weekday").value = String(s.weekday ?? 0);
  $("schedule-day").value = s.day ?? 1;
  $("schedule-hour").value = s.hour;
  $("schedule-recipients").value = joined(s.recipients);
  $("schedule-users").value = joined(s.dbusername);
  $("schedule-schemas").value = joined(s.object_schema);
  $("schedule-objects").value = joined(s.objects);
  showTiming();
  formError($("schedule-error"), null);
  show($("schedule-form"), true);
  $("schedule-name").focus();
}

function closeForm() {
  editing = null;
  show($("schedule-form"), false);
}

function formBody() {
  const number = (id) => ($(id).value === "" ? null : Number($(id).value)); // the API says what is wrong
  const weekly = $("schedule-frequency").value === "weekly";
  return {
    name: $("schedule-name").value.trim(),
    enabled: $("schedule-enabled").checked,
    kind: $("schedule-kind").value,
    format: $("schedule-format").value,
    frequency: $("schedule-frequency").value,
    weekday: weekly ? Number($("schedule-weekday").value) : null,
    day: weekly ? null : number("schedule-day"),
    hour: number("schedule-hour"),
    recipients: list($("schedule-recipients").value),
    dbusername: list($("schedule-users").value),
    object_schema: list($("schedule-schemas").value),
    objects: list($("schedule-objects").value),
  };
}

async function save(body, id = null) {
  const saved = await saveItem(BASE, body, id);
  status(`Rapport programmé « ${saved.name} » enregistré${saved.enabled ? "" : " (inactif)"}.`);
  await loadSchedules();
  return saved;
}

const submit = submitHandler({
  error: () => $("schedule-error"),
  nameInput: () => $("schedule-name"),
  missing: "Donnez un nom au rapport programmé.",
  body: () => formBody(),
  save: (body) => save(body, editing ? editing.id : null),
  done: () => closeForm(),
});

async function runsOf(schedule) {
  try {
    return (await getJSON(`${BASE}/${encodeURIComponent(schedule.id)}`)).runs;
  } catch {
    return []; // deleted meanwhile: the next load drops it
  }
}

async function loadSchedules() {
  const box = $("schedules-list");
  try {
    const found = await getJSON(BASE);
    titles = found.reports;
    const runs = await Promise.all(found.schedules.map(runsOf));
    clear(box);
    found.schedules.forEach((s, i) => box.append(item(s, runs[i])));
    if (!found.schedules.length) box.append(el("li", { class: "muted", text: "Aucun rapport programmé." }));
    fillSelect($("schedule-format"), found.formats.map((f) => [f, f.toUpperCase()]), $("schedule-format").value);
  } catch (err) {
    status(err.message || "Les rapports programmés n'ont pas pu être lus.");
  }
}

/** Show (admins) or hide (auditors) the scheduled reports, and load them. */
export async function showSchedules() {
  const admin = isAdmin();
  show($("schedules"), admin);
  if (!admin) return;
  closeForm();
  await loadSchedules();
}

export function initSchedules() {
  fillSelect($("schedule-weekday"), WEEKDAYS.map((d, i) => [String(i), d]), "0");
  $("schedule-new").addEventListener("click", () => openForm());
  $("schedule-cancel").addEventListener("click", () => {
    closeForm();
    $("schedule-new").focus();
  });
  $("schedule-frequency").addEventListener("change", showTiming);
  $("schedule-form").addEventListener("submit", submit);
}
