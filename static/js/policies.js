// The admin part of the Alertes view: the alert policies (list, create, edit, enable or disable,
// delete through /api/alert-policies) and the scheduled reports (list, send now through
// /api/report-schedules). Hidden for auditors; the API refuses them anyway (403).
import { currentSession, getJSON } from "./api.js";
import { clear, dateTime, el, show } from "./format.js";

const SEVERITY = { high: "élevée", medium: "moyenne", low: "faible" };
const STATUS = { sent: "envoyé", pending: "en attente", failed: "en échec" };
const $ = (id) => document.getElementById(id);

let detectors = {};
let editing = null; // the policy being edited, or null for a new one

const isAdmin = () => currentSession()?.user?.role === "admin";
const list = (value) => value.split(",").map((v) => v.trim()).filter(Boolean);
const joined = (values) => (values || []).join(", ");

function status(message) {
  $("policies-status").textContent = message;
}

/** The body of PUT/POST /api/alert-policies from a stored policy (its own fields only). */
function bodyOf(policy) {
  const { id, created_by, created_at, updated_at, ...body } = policy;
  return body;
}

function summary(policy) {
  const which = policy.detectors === null
    ? "tous les détecteurs"
    : policy.detectors.map((d) => detectors[d] || d).join(", ") || "aucun détecteur";
  const parts = [policy.enabled ? "Active" : "Inactive", which, `gravité ≥ ${SEVERITY[policy.min_severity]}`];
  if (policy.watch_users.length) parts.push(`comptes : ${joined(policy.watch_users)}`);
  if (policy.quiet_hours) parts.push(`heures calmes ${policy.quiet_hours.start} h – ${policy.quiet_hours.end} h`);
  return parts.join(" · ");
}

function item(policy) {
  const node = el("li", { "data-policy": policy.id });
  node.append(el("h3", { text: policy.name }), el("p", { class: "muted small", text: summary(policy) }));
  const actions = el("div", { class: "finding-actions" });
  actions.append(
    el("button", { type: "button", class: "btn", text: "Modifier", onclick: () => openForm(policy) }),
    el("button", {
      type: "button", class: "btn btn-quiet", text: policy.enabled ? "Désactiver" : "Activer",
      onclick: () => save({ ...bodyOf(policy), enabled: !policy.enabled }, policy.id).catch((err) => status(err.message)),
    }),
  );
  const remove = el("button", { type: "button", class: "btn btn-quiet", text: "Supprimer" });
  remove.addEventListener("click", async () => {
    if (remove.dataset.confirm !== "1") { // a second click confirms: no dialog box
      remove.dataset.confirm = "1";
      remove.textContent = "Confirmer la suppression";
      return;
    }
    try {
      await getJSON(`/api/alert-policies/${encodeURIComponent(policy.id)}`, { method: "DELETE" });
      status(`Politique « ${policy.name} » supprimée.`);
      await loadPolicies();
    } catch (err) {
      status(err.message);
    }
  });
  actions.append(remove);
  node.append(actions);
  return node;
}

function fillDetectors(checked) {
  const box = clear($("policy-detectors"));
  for (const [type, label] of Object.entries(detectors)) {
    const input = el("input", { type: "checkbox", value: type, checked: (checked || []).includes(type) });
    box.append(el("label", { class: "check" }, input, ` ${label}`));
  }
}

function openForm(policy = null) {
  editing = policy;
  const p = policy || { name: "", enabled: true, detectors: null, min_severity: "medium", watch_users: [],
    ignore_users: [], watch_objects: [], ignore_objects: [], quiet_hours: null, parameters: {},
    webhooks: [], emails: [] };
  $("policy-form-title").textContent = policy ? `Modifier « ${policy.name} »` : "Nouvelle politique";
  $("policy-name").value = p.name;
  $("policy-enabled").checked = p.enabled;
  fillDetectors(p.detectors);
  $("policy-severity").value = p.min_severity;
  $("policy-watch-users").value = joined(p.watch_users);
  $("policy-ignore-users").value = joined(p.ignore_users);
  $("policy-watch-objects").value = joined(p.watch_objects);
  $("policy-ignore-objects").value = joined(p.ignore_objects);
  $("policy-quiet-start").value = p.quiet_hours ? p.quiet_hours.start : "";
  $("policy-quiet-end").value = p.quiet_hours ? p.quiet_hours.end : "";
  $("policy-parameters").value = Object.entries(p.parameters).map(([k, v]) => `${k}=${v}`).join(", ");
  $("policy-webhooks").value = joined(p.webhooks);
  $("policy-emails").value = joined(p.emails);
  show($("policy-error"), false);
  show($("policy-form"), true);
  $("policy-name").focus();
}

function closeForm() {
  editing = null;
  show($("policy-form"), false);
}

function formBody() {
  const chosen = [...$("policy-detectors").querySelectorAll("input:checked")].map((i) => i.value);
  const start = $("policy-quiet-start").value;
  const end = $("policy-quiet-end").value;
  const parameters = {};
  for (const pair of list($("policy-parameters").value)) {
    const [key, value = ""] = pair.split("=").map((x) => x.trim());
    const n = Number(value);
    parameters[key] = value !== "" && Number.isFinite(n) ? n : value; // the API says what is wrong
  }
  return {
    name: $("policy-name").value.trim(),
    enabled: $("policy-enabled").checked,
    detectors: chosen.length ? chosen : null,
    min_severity: $("policy-severity").value,
    watch_users: list($("policy-watch-users").value),
    ignore_users: list($("policy-ignore-users").value),
    watch_objects: list($("policy-watch-objects").value),
    ignore_objects: list($("policy-ignore-objects").value),
    quiet_hours: start === "" && end === "" ? null : { start: start === "" ? null : Number(start),
      end: end === "" ? null : Number(end) },
    parameters,
    webhooks: list($("policy-webhooks").value),
    emails: list($("policy-emails").value),
  };
}

async function save(body, id = null) {
  const saved = await getJSON(id ? `/api/alert-policies/${encodeURIComponent(id)}` : "/api/alert-policies", {
    method: id ? "PUT" : "POST",
    json: body,
  });
  status(`Politique « ${saved.name} » enregistrée${saved.enabled ? "" : " (inactive)"}.`);
  await loadPolicies();
  return saved;
}

async function submit(event) {
  event.preventDefault();
  const error = $("policy-error");
  const body = formBody();
  if (!body.name) {
    error.textContent = "Donnez un nom à la politique.";
    show(error, true);
    $("policy-name").focus();
    return;
  }
  try {
    await save(body, editing ? editing.id : null);
    closeForm();
  } catch (err) {
    error.textContent = err.message;
    show(error, true);
  }
}

async function loadPolicies() {
  const box = $("policies-list");
  try {
    const found = await getJSON("/api/alert-policies");
    detectors = found.detectors;
    clear(box);
    found.policies.forEach((p) => box.append(item(p)));
    if (!found.policies.length) box.append(el("li", { class: "muted", text: "Aucune politique." }));
  } catch (err) {
    status(err.message || "Les politiques n'ont pas pu être lues.");
  }
}

function scheduleItem(s, titles) {
  const node = el("li", { "data-schedule": s.id });
  node.append(el("h3", { text: s.name }));
  const when = s.enabled && s.next_run_at ? `prochain envoi le ${dateTime(s.next_run_at)}` : "inactive";
  node.append(el("p", { class: "muted small",
    text: `${titles[s.kind] || s.kind} (${s.format.toUpperCase()}) · ${s.description} · ${when}` }));
  node.append(el("p", { class: "small", text: `Destinataires : ${joined(s.recipients)}` }));
  const last = s.last_status
    ? `Dernier envoi : ${STATUS[s.last_status]} le ${dateTime(s.last_run_at)}${s.last_error ? ` (${s.last_error})` : ""}`
    : "Jamais envoyé.";
  node.append(el("p", { class: s.last_status === "failed" ? "error small" : "small", text: last }));
  const send = el("button", { type: "button", class: "btn", text: "Envoyer maintenant" });
  send.addEventListener("click", async () => {
    send.disabled = true;
    $("schedules-status").textContent = `Envoi de « ${s.name} »…`;
    try {
      const run = await getJSON(`/api/report-schedules/${encodeURIComponent(s.id)}/send`, { method: "POST" });
      $("schedules-status").textContent = run.status === "sent"
        ? `Rapport « ${s.name} » envoyé.`
        : `Envoi de « ${s.name} » en échec, nouvel essai plus tard : ${run.last_error}`;
      await loadSchedules();
    } catch (err) {
      $("schedules-status").textContent = err.message;
      send.disabled = false;
    }
  });
  node.append(el("div", { class: "finding-actions" }, send));
  return node;
}

async function loadSchedules() {
  const box = $("schedules-list");
  try {
    const found = await getJSON("/api/report-schedules");
    clear(box);
    found.schedules.forEach((s) => box.append(scheduleItem(s, found.reports)));
    if (!found.schedules.length) box.append(el("li", { class: "muted", text: "Aucun rapport programmé." }));
  } catch (err) {
    $("schedules-status").textContent = err.message || "Les rapports programmés n'ont pas pu être lus.";
  }
}

/** Show (admins) or hide (auditors) the policies and the scheduled reports, and load them. */
export async function showAlertAdmin() {
  const admin = isAdmin();
  show($("policies"), admin);
  show($("schedules"), admin);
  if (!admin) return;
  closeForm();
  await Promise.all([loadPolicies(), loadSchedules()]);
}

export function initPolicies() {
  $("policy-new").addEventListener("click", () => openForm());
  $("policy-cancel").addEventListener("click", () => {
    closeForm();
    $("policy-new").focus();
  });
  $("policy-form").addEventListener("submit", submit);
}
