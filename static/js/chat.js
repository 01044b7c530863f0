// The chat: questions streamed through POST /api/chat/stream, what was understood as chips above the
// answer (changing or removing a chip asks the edited plan again), then the chart, the table, the
// query that ran and the next questions. Conversations: list, open, delete, new.
import { ApiError, getJSON, request, stream } from "./api.js";
import { answerChart } from "./charts.js";
import { clear, columnLabel, dateTime, el, localDay, newId, show } from "./format.js";
import { dataTable } from "./table.js";

const EXAMPLES = [
  "Combien de connexions échouées par jour cette semaine ?",
  "Quels sont les utilisateurs les plus actifs ?",
  "Activité par jour de la semaine et par heure sur les 30 derniers jours",
  "Qui a supprimé des tables hier soir ?",
  "Y a-t-il des activités suspectes ?",
];

const GROUPINGS = [
  ["", "aucun regroupement"],
  ["hour", "par heure"],
  ["day", "par jour"],
  ["week", "par semaine"],
  ["month", "par mois"],
  ["weekday", "par jour de la semaine"],
  ["weekday,hour", "par jour de la semaine et par heure"],
  ["dbusername", "par utilisateur"],
  ["action_name", "par action"],
  ["object_name", "par objet"],
  ["object_schema", "par schéma"],
  ["userhost", "par machine"],
  ["client_program_name", "par programme"],
  ["os_username", "par utilisateur OS"],
  ["return_code", "par code retour"],
];

const PERIODS = [
  ["today", "aujourd'hui"],
  ["yesterday", "hier"],
  ["7d", "les 7 derniers jours"],
  ["30d", "les 30 derniers jours"],
  ["all", "toute la période"],
  ["custom", "dates choisies…"],
];

const INT_FIELDS = new Set(["return_code", "session_id", "instance_id"]);

const ui = {};
let conversationId = null;
let busy = false;

function addDays(day, n) {
  const [y, m, d] = day.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d + n));
  return date.toISOString().slice(0, 10);
}

/** A period of whole local days (naive bounds: the server reads them in APP_TIMEZONE). */
export function periodFor(choice, from, to) {
  const today = localDay();
  const span = (start, endExcl, label) => ({ start: `${start}T00:00:00`, end: `${endExcl}T00:00:00`, label });
  switch (choice) {
    case "today": return span(today, addDays(today, 1), "aujourd'hui");
    case "yesterday": return span(addDays(today, -1), today, "hier");
    case "7d": return span(addDays(today, -6), addDays(today, 1), "les 7 derniers jours");
    case "30d": return span(addDays(today, -29), addDays(today, 1), "les 30 derniers jours");
    case "all": return null;
    default: return from && to ? span(from, addDays(to, 1), "") : undefined;
  }
}

function copy(value) {
  return JSON.parse(JSON.stringify(value));
}

/** The plan's spec without one filter chip. */
export function withoutChip(spec, chip) {
  const out = copy(spec);
  const f = out.filters || (out.filters = {});
  const drop = (list, values) => (list || []).filter((v) => !values.includes(v));
  switch (chip.op) {
    case "in": if (f.include) delete f.include[chip.field]; break;
    case "not_in": if (f.exclude) delete f.exclude[chip.field]; break;
    case "category": f.categories = drop(f.categories, chip.values); break;
    case "not_category": f.exclude_categories = drop(f.exclude_categories, chip.values); break;
    case "failed": f.failed = null; break;
    case "contains": f.sql_contains = []; break;
    case "hours": f.hours = null; break;
    case "off_hours": f.off_hours = null; break;
    default: break;
  }
  return out;
}

function withValues(spec, chip, values) {
  const out = copy(spec);
  const f = out.filters || (out.filters = {});
  const key = chip.op === "in" ? "include" : "exclude";
  f[key] = { ...(f[key] || {}), [chip.field]: values };
  return out;
}

function chipButton(text, label, onClick) {
  return el("button", { type: "button", class: "chip-action", "aria-label": label, text, onclick: onClick });
}

/** The chips of what was understood: measure, period, filters, grouping; each can be changed. */
function renderChips(container, response, question) {
  clear(container);
  const plan = response.plan;
  if (!plan) return;
  const spec = plan.spec || {};
  const reask = (edited, what) => ask(question, { plan: edited, note: what });
  const list = el("ul", { class: "chips", "aria-label": "Ce que j'ai compris" });
  list.append(el("li", { class: "chip chip-measure" }, el("span", { class: "chip-kind", text: "Mesure" }),
    el("span", { text: plan.measure_label || plan.measure })));

  // period
  const periodText = plan.period ? plan.period.text : "toute la période";
  const periodChip = el("li", { class: "chip chip-period" }, el("span", { class: "chip-kind", text: "Période" }),
    el("span", { class: "chip-value", text: periodText }));
  const editorId = newId("period");
  const editBtn = chipButton("Modifier", `Modifier la période (${periodText})`, () => {
    const editor = document.getElementById(editorId);
    editor.hidden = !editor.hidden;
    editBtn.setAttribute("aria-expanded", String(!editor.hidden));
    if (!editor.hidden) editor.querySelector("select").focus();
  });
  editBtn.setAttribute("aria-expanded", "false");
  editBtn.setAttribute("aria-controls", editorId);
  periodChip.append(editBtn);
  if (plan.period) {
    periodChip.append(chipButton("×", `Retirer la période (${periodText})`,
      () => reask({ ...copy(spec), period: null }, "période retirée")));
  }
  list.append(periodChip);

  // filters
  for (const chip of plan.filters || []) {
    const li = el("li", { class: "chip chip-filter" }, el("span", { class: "chip-kind", text: "Filtre" }),
      el("span", { class: "chip-value", text: chip.label }));
    if ((chip.op === "in" || chip.op === "not_in") && chip.field) {
      const formId = newId("filter");
      const form = el("form", { id: formId, class: "chip-editor", hidden: true });
      const inputId = newId("values");
      const input = el("input", { id: inputId, value: chip.values.join(", ") });
      form.append(el("label", { for: inputId, text: `${columnLabel(chip.field)} (valeurs séparées par des virgules)` }),
        input, el("button", { type: "submit", class: "btn btn-small btn-primary", text: "Appliquer" }));
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const values = input.value.split(",").map((v) => v.trim()).filter(Boolean)
          .map((v) => (INT_FIELDS.has(chip.field) && /^-?\d+$/.test(v) ? Number(v) : v));
        if (!values.length) return;
        reask(withValues(spec, chip, values), `filtre modifié : ${values.join(", ")}`);
      });
      const edit = chipButton("Modifier", `Modifier le filtre ${chip.label}`, () => {
        form.hidden = !form.hidden;
        edit.setAttribute("aria-expanded", String(!form.hidden));
        if (!form.hidden) input.focus();
      });
      edit.setAttribute("aria-expanded", "false");
      edit.setAttribute("aria-controls", formId);
      li.append(edit);
      li.append(chipButton("×", `Retirer le filtre ${chip.label}`, () => reask(withoutChip(spec, chip), `filtre retiré : ${chip.label}`)));
      list.append(li);
      list.append(el("li", { class: "chip-editor-row" }, form));
      continue;
    }
    li.append(chipButton("×", `Retirer le filtre ${chip.label}`, () => reask(withoutChip(spec, chip), `filtre retiré : ${chip.label}`)));
    list.append(li);
  }

  // grouping
  const groupId = newId("group");
  const current = (plan.group_by || []).join(",");
  const select = el("select", { id: groupId, class: "chip-select" });
  const known = GROUPINGS.some(([v]) => v === current);
  if (!known) select.append(el("option", { value: current, text: plan.group_label || current }));
  for (const [value, label] of GROUPINGS) {
    const option = el("option", { value, text: label });
    if (value === current) option.selected = true;
    select.append(option);
  }
  select.addEventListener("change", () => {
    const edited = copy(spec);
    edited.group_by = select.value ? select.value.split(",") : [];
    reask(edited, `regroupement : ${select.options[select.selectedIndex].text}`);
  });
  list.append(el("li", { class: "chip chip-group" },
    el("label", { for: groupId, class: "chip-kind", text: "Regroupement" }), select));
  container.append(list);

  // the period editor (below the chips)
  const editor = el("form", { id: editorId, class: "chip-editor period-editor", hidden: true });
  const choiceId = newId("choice");
  const choice = el("select", { id: choiceId });
  for (const [value, label] of PERIODS) choice.append(el("option", { value, text: label }));
  const fromId = newId("from");
  const toId = newId("to");
  const from = el("input", { id: fromId, type: "date" });
  const to = el("input", { id: toId, type: "date" });
  const dates = el("div", { class: "dates", hidden: true },
    el("label", { for: fromId, text: "Du" }), from, el("label", { for: toId, text: "au (inclus)" }), to);
  choice.addEventListener("change", () => { dates.hidden = choice.value !== "custom"; });
  editor.append(el("label", { for: choiceId, text: "Nouvelle période" }), choice, dates,
    el("button", { type: "submit", class: "btn btn-small btn-primary", text: "Appliquer" }));
  editor.addEventListener("submit", (e) => {
    e.preventDefault();
    const period = periodFor(choice.value, from.value, to.value);
    if (period === undefined) { from.focus(); return; }
    if (period && period.start >= period.end) { from.focus(); return; }
    reask({ ...copy(spec), period }, `période : ${period ? (period.label || `${from.value} – ${to.value}`) : "toute la période"}`);
  });
  container.append(editor);
}

function renderSuggestions(container, suggestions) {
  clear(container);
  if (!suggestions || !suggestions.length) return;
  const list = el("ul", { class: "suggestions", "aria-label": "Questions suivantes" });
  for (const text of suggestions) {
    list.append(el("li", {}, el("button", { type: "button", class: "suggestion", text, onclick: () => ask(text) })));
  }
  container.append(el("p", { class: "muted small", text: "Et ensuite :" }), list);
}

function renderResult(turn, response, question) {
  renderChips(turn.chips, response, question);
  clear(turn.chart);
  clear(turn.table);
  clear(turn.query);
  // A bar of a ranking drills down: that value alone, by action (or by user for actions).
  const chart = answerChart(response, (value, column) => {
    if (["hour", "day", "week", "month", "weekday"].includes(column) || !response.plan) return;
    const spec = copy(response.plan.spec || {});
    spec.filters = spec.filters || {};
    spec.filters.include = { ...(spec.filters.include || {}), [column]: [value] };
    spec.group_by = [column === "action_name" ? "dbusername" : "action_name"];
    ask(question, { plan: spec, note: `détail : ${value}` });
  });
  if (chart) turn.chart.append(chart);
  if (response.data && response.data.columns && response.data.columns.length) {
    turn.table.append(dataTable(response.data, {
      caption: `Tableau : ${response.plan ? response.plan.text : question}`,
      fileName: "reponse-sio-audit.csv",
    }));
  }
  if (response.query) {
    const details = el("details", { class: "query" }, el("summary", { text: "Voir la requête exécutée" }),
      el("pre", {}, el("code", { text: JSON.stringify(response.query, null, 2) })));
    turn.query.append(details);
  }
  renderSuggestions(turn.suggestions, response.suggestions);
}

function newTurn(question, note) {
  const article = el("article", { class: "turn" });
  const q = el("div", { class: "question" }, el("span", { class: "visually-hidden", text: "Vous : " }), question);
  if (note) q.append(el("span", { class: "note", text: ` (${note})` }));
  const chips = el("div", { class: "chips-slot" });
  const answer = el("p", { class: "answer", "aria-busy": "true" });
  const status = el("p", { class: "muted small turn-status", text: "Réponse en cours…" });
  const chart = el("div", { class: "chart-slot" });
  const table = el("div", { class: "table-slot" });
  const query = el("div", { class: "query-slot" });
  const suggestions = el("div", { class: "suggestions-slot" });
  article.append(q, el("div", { class: "answer-block" }, chips, answer, status, chart, table, query, suggestions));
  ui.thread.append(article);
  show(ui.intro, false);
  return { article, chips, answer, status, chart, table, query, suggestions };
}

/** Ask a question (or an edited plan) in the current conversation; the answer streams in. */
export async function ask(question, { plan = null, note = null } = {}) {
  if (busy) return;
  busy = true;
  ui.submit.disabled = true;
  show(ui.error, false);
  const turn = newTurn(question, note);
  turn.article.scrollIntoView({ block: "nearest" });
  const body = { message: question };
  if (conversationId) body.conversation_id = conversationId;
  if (plan) body.plan = plan;
  let finished = false;
  try {
    await stream("/api/chat/stream", {
      method: "POST",
      json: body,
      onEvent(name, data) {
        if (name === "meta") {
          conversationId = data.conversation_id;
          renderChips(turn.chips, data, question);
        } else if (name === "token") {
          turn.answer.append(typeof data === "string" ? data : String(data));
        } else if (name === "done") {
          finished = true;
          conversationId = data.conversation_id;
          turn.answer.textContent = data.answer;
          turn.answer.setAttribute("aria-busy", "false");
          turn.status.textContent = data.cached ? "Réponse tirée du cache." : "";
          show(turn.status, Boolean(data.cached));
          renderResult(turn, data, question);
        } else if (name === "error") {
          finished = true;
          turn.answer.setAttribute("aria-busy", "false");
          turn.status.textContent = "";
          turn.answer.textContent = (data && data.detail) || "La réponse n'a pas pu être produite.";
          turn.answer.classList.add("error");
        }
      },
    });
    if (!finished) throw new ApiError(0, "interrupted", "La réponse a été interrompue. Réessayez.");
    refreshConversations();
  } catch (err) {
    turn.answer.setAttribute("aria-busy", "false");
    turn.status.textContent = "";
    turn.answer.textContent = err.message || "La question n'a pas pu être posée.";
    turn.answer.classList.add("error");
  } finally {
    busy = false;
    ui.submit.disabled = false;
  }
}

function startNew() {
  conversationId = null;
  clear(ui.thread);
  show(ui.intro, true);
  markCurrent();
}

function markCurrent() {
  for (const item of ui.list.querySelectorAll("li")) {
    const open = item.querySelector(".conv-open");
    if (item.dataset.id === conversationId) open.setAttribute("aria-current", "true");
    else open.removeAttribute("aria-current");
  }
}

async function openConversation(id) {
  try {
    const doc = await getJSON(`/api/chat/conversations/${encodeURIComponent(id)}`);
    conversationId = doc.id;
    clear(ui.thread);
    show(ui.intro, false);
    for (const t of doc.turns || []) {
      const turn = newTurn(t.question);
      turn.answer.textContent = t.answer;
      turn.answer.setAttribute("aria-busy", "false");
      turn.status.textContent = "";
      // The stored plan is asked again as it was read (same period), with its table and chart.
      turn.suggestions.append(el("button", {
        type: "button", class: "btn btn-small", text: "Reposer la question (tableau et graphique)",
        onclick: () => (t.plan ? ask(t.question, { plan: t.plan, note: "reposée" }) : ask(t.question)),
      }));
    }
    markCurrent();
    ui.input.focus();
  } catch (err) {
    showError(err.message);
  }
}

async function deleteConversation(id, title) {
  try {
    await request(`/api/chat/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
    if (id === conversationId) startNew();
    await refreshConversations();
    ui.convStatus.textContent = `Conversation « ${title} » supprimée.`;
    ui.newButton.focus();
  } catch (err) {
    showError(err.message);
  }
}

export async function refreshConversations() {
  let items = [];
  try {
    items = (await getJSON("/api/chat/conversations?limit=50")).conversations || [];
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    showError(err.message);
    return;
  }
  clear(ui.list);
  show(ui.empty, items.length === 0);
  for (const c of items) {
    const title = c.title || "Sans titre";
    const li = el("li", { dataset: { id: c.id } },
      el("button", { type: "button", class: "conv-open", onclick: () => openConversation(c.id) },
        el("span", { class: "conv-title", text: title }),
        el("span", { class: "conv-date muted small", text: `${dateTime(c.updated_at)} · ${c.turn_count} question${c.turn_count > 1 ? "s" : ""}` })),
      el("button", {
        type: "button", class: "conv-delete", text: "Supprimer",
        "aria-label": `Supprimer la conversation « ${title} »`, onclick: () => deleteConversation(c.id, title),
      }));
    ui.list.append(li);
  }
  markCurrent();
}

function showError(message) {
  ui.error.textContent = message;
  show(ui.error, true);
}

/** Open the chat on a question, in a new conversation (from the anomalies and activity views). */
export function askInNewConversation(question) {
  startNew();
  location.hash = "#/chat";
  ask(question);
}

export function initChat() {
  ui.thread = document.getElementById("thread");
  ui.intro = document.getElementById("chat-intro");
  ui.form = document.getElementById("ask-form");
  ui.input = document.getElementById("ask-input");
  ui.submit = document.getElementById("ask-submit");
  ui.error = document.getElementById("ask-error");
  ui.list = document.getElementById("conv-list");
  ui.empty = document.getElementById("conv-empty");
  ui.newButton = document.getElementById("conv-new");
  ui.convStatus = el("p", { class: "visually-hidden", role: "status", "aria-live": "polite" });
  ui.list.after(ui.convStatus);
  const examples = document.getElementById("examples");
  for (const text of EXAMPLES) {
    examples.append(el("li", {}, el("button", { type: "button", class: "suggestion", text, onclick: () => ask(text) })));
  }
  // Completions of what is being typed: frequent questions and known examples.
  const completions = el("datalist", { id: "ask-completions" });
  ui.input.after(completions);
  ui.input.setAttribute("list", "ask-completions");
  let typing = null;
  ui.input.addEventListener("input", () => {
    clearTimeout(typing);
    const partial = ui.input.value.trim();
    if (partial.length < 3) return;
    typing = setTimeout(async () => {
      try {
        const { suggestions } = await getJSON(
          `/api/chat/suggestions?limit=8&partial_message=${encodeURIComponent(partial.slice(0, 200))}`);
        clear(completions);
        for (const text of suggestions) completions.append(el("option", { value: text }));
      } catch {
        // completions are a convenience: no message
      }
    }, 250);
  });
  ui.form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = ui.input.value.trim();
    if (!text) {
      showError("Écrivez une question.");
      ui.input.focus();
      return;
    }
    ui.input.value = "";
    ask(text);
  });
  ui.newButton.addEventListener("click", () => {
    startNew();
    ui.input.focus();
  });
}

export function resetChat() {
  startNew();
  clear(ui.list);
}
