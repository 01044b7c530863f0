// The time window picker of the anomalies and activity views: 24 h, 7 days, 30 days, or two dates.
import { el, newId, localDay } from "./format.js";

const CHOICES = [
  ["24h", "les dernières 24 heures"],
  ["7d", "les 7 derniers jours"],
  ["30d", "les 30 derniers jours"],
  ["custom", "dates choisies…"],
];

function addDays(day, n) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

function frDay(day) {
  const [y, m, d] = day.split("-");
  return `${d}/${m}/${y}`;
}

/**
 * Fill a form with the picker; onApply({query, phrase}) gets the API query string and the period as
 * the chat reads it ("sur les 7 derniers jours", "du 20/11/2026 au 27/11/2026").
 */
export function windowPicker(form, onApply, { initial = "7d" } = {}) {
  const choiceId = newId("window");
  const fromId = newId("from");
  const toId = newId("to");
  const choice = el("select", { id: choiceId, name: "timeframe" });
  for (const [value, label] of CHOICES) {
    const option = el("option", { value, text: label });
    if (value === initial) option.selected = true;
    choice.append(option);
  }
  const today = localDay();
  const from = el("input", { id: fromId, type: "date", value: addDays(today, -6) });
  const to = el("input", { id: toId, type: "date", value: today });
  const dates = el("span", { class: "dates", hidden: true },
    el("label", { for: fromId, text: "Du" }), from, el("label", { for: toId, text: "au (inclus)" }), to);
  const error = el("span", { class: "error", role: "alert" });
  choice.addEventListener("change", () => { dates.hidden = choice.value !== "custom"; });
  form.append(el("label", { for: choiceId, text: "Période" }), choice, dates,
    el("button", { type: "submit", class: "btn btn-primary", text: "Afficher" }), error);

  function current() {
    if (choice.value !== "custom") {
      const phrase = {
        "24h": "sur les dernières 24 heures",
        "7d": "sur les 7 derniers jours",
        "30d": "sur les 30 derniers jours",
      }[choice.value];
      return { query: `timeframe=${choice.value}`, phrase, label: CHOICES.find((c) => c[0] === choice.value)[1] };
    }
    if (!from.value || !to.value || from.value > to.value) return null;
    const end = addDays(to.value, 1);
    return {
      query: `start=${from.value}&end=${end}`,
      phrase: `du ${frDay(from.value)} au ${frDay(to.value)}`,
      label: `du ${frDay(from.value)} au ${frDay(to.value)}`,
    };
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = current();
    if (!value) {
      error.textContent = "Choisissez une date de début antérieure ou égale à la date de fin.";
      from.focus();
      return;
    }
    error.textContent = "";
    onApply(value);
  });
  return { current, apply: () => { const v = current(); if (v) onApply(v); } };
}
