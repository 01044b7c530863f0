// Activity over a window: events per day, top users, actions and objects, failed logons per day
// (GET /api/audit/stats and /api/audit/stats/day). Each chart opens the matching chat question.
import { getJSON } from "./api.js";
import { drawChart } from "./charts.js";
import { askInNewConversation } from "./chat.js";
import { bucketLabel, cell, clear, el, number } from "./format.js";
import { windowPicker } from "./window.js";

let picker = null;
let loading = 0;

function card({ title, kind, pairs, column, question, pick, valueLabel = "Événements" }) {
  const section = el("section", { class: "card activity-card" });
  section.append(el("h2", { text: title }));
  if (!pairs.length) {
    section.append(el("p", { class: "muted", text: "Aucun événement sur cette période." }));
  } else {
    const labels = pairs.map(([k]) => bucketLabel(k, column));
    const values = pairs.map(([, v]) => v);
    const top = [...pairs].sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([k, v]) => `${cell(k, column)} (${number(v)})`).join(", ");
    section.append(drawChart(kind, {
      labels, values, label: valueLabel, title, caption: false,
      description: `${title}. Les plus élevés : ${top}.`,
      onPick: pick ? (i) => askInNewConversation(pick(pairs[i][0])) : null,
    }));
  }
  section.append(el("button", {
    type: "button", class: "btn ask-about", text: "Poser la question dans le chat",
    "aria-label": `Poser la question dans le chat : ${question}`, dataset: { question },
    onclick: () => askInNewConversation(question),
  }));
  return section;
}

async function load(window) {
  const status = document.getElementById("activity-status");
  const cards = clear(document.getElementById("activity-cards"));
  const ticket = ++loading;
  status.textContent = `Chargement de l'activité sur ${window.label}…`;
  try {
    const [stats, failed] = await Promise.all([
      getJSON(`/api/audit/stats?fields=dbusername,action_name,object_name&buckets=day&limit=10&${window.query}`),
      getJSON(`/api/audit/stats/day?action_name=LOGON&failed=true&${window.query}`),
    ]);
    if (ticket !== loading) return;
    const p = window.phrase;
    status.textContent = `${number(stats.total)} événements sur ${window.label}.`;
    const fields = stats.fields || {};
    cards.append(
      card({
        title: "Événements par jour", kind: "line", pairs: (stats.buckets || {}).day || [], column: "day",
        question: `Nombre d'événements par jour ${p}`,
      }),
      card({
        title: "Utilisateurs les plus actifs", kind: "bar", pairs: (fields.dbusername || {}).top || [],
        column: "dbusername", question: `Quels utilisateurs sont les plus actifs ${p} ?`,
        pick: (user) => `Activité de ${user} ${p}`,
      }),
      card({
        title: "Actions les plus fréquentes", kind: "bar", pairs: (fields.action_name || {}).top || [],
        column: "action_name", question: `Quelles actions sont les plus fréquentes ${p} ?`,
        pick: (action) => `Événements ${action} par utilisateur ${p}`,
      }),
      card({
        title: "Objets les plus utilisés", kind: "bar", pairs: (fields.object_name || {}).top || [],
        column: "object_name", question: `Événements par objet ${p}`,
        pick: (object) => `Événements sur ${object} par utilisateur ${p}`,
      }),
      card({
        title: "Connexions échouées par jour", kind: "bar", pairs: failed.rows || [], column: "day",
        question: `Connexions échouées par jour ${p}`, valueLabel: "Connexions échouées",
      }),
    );
  } catch (err) {
    if (ticket === loading) status.textContent = err.message;
  }
}

export function showActivity() {
  if (!picker) picker = windowPicker(document.getElementById("activity-form"), load);
  picker.apply();
}
