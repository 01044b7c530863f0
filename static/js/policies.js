// The admin part of the Alertes view: the alert policies (list, create, edit, enable or disable,
// delete through /api/alert-policies). Hidden for auditors; the API refuses them anyway (403).
import { getJSON } from "./api.js";
import { deleteButton, formError, isAdmin, joined, list, saveItem, submitHandler } from "./editors.js";
import { clear, el, show } from "./format.js";

const SEVERITY = { high: "élevée", medium: "moyenne", low: "faible" };
const $ = (id) => document.getElementById(id);

let detectors = {};
let editing = null; // the policy being edited, or null for a new one

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
  actions.append(deleteButton(async () => {
    try {
      await getJSON(`/api/alert-policies/${encodeURIComponent(policy.id)}`, { method: "DELETE" });
      status(`Politique « ${policy.name} » supprimée.`);
      await loadPolicies();
    } catch (err) {
      status(err.message);
    }
  }));
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
  formError($("policy-error"), null);
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
  const saved = await saveItem("/api/alert-policies", body, id);
  status(`Politique « ${saved.name} » enregistrée${saved.enabled ? "" : " (inactive)"}.`);
  await loadPolicies();
  return saved;
}

const submit = submitHandler({
  error: () => $("policy-error"),
  nameInput: () => $("policy-name"),
  missing: "Donnez un nom à la politique.",
  body: () => formBody(),
  save: (body) => save(body, editing ? editing.id : null),
  done: () => closeForm(),
});

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

/** Show (admins) or hide (auditors) the policies, and load them. */
export async function showPolicies() {
  const admin = isAdmin();
  show($("policies"), admin);
  if (!admin) return;
  closeForm();
  await loadPolicies();
}

export function initPolicies() {
  $("policy-new").addEventListener("click", () => openForm());
  $("policy-cancel").addEventListener("click", () => {
    closeForm();
    $("policy-new").focus();
  });
  $("policy-form").addEventListener("submit", submit);
}
