// The table an answer stands on: sortable columns, pages, CSV download of every row as the API gave it.
import { cell, columnLabel, el, clear, newId, number } from "./format.js";

const PAGE_SIZE = 20;

function compare(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), "fr", { numeric: true, sensitivity: "base" });
}

function csvField(value) {
  if (value === null || value === undefined) return "";
  const text = typeof value === "object" ? JSON.stringify(value) : String(value);
  return /[";\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** CSV of the rows as the API gave them: ';' separated (as French spreadsheets expect), UTF-8 with BOM. */
export function toCsv(columns, rows) {
  const lines = [columns.map(csvField).join(";"), ...rows.map((row) => row.map(csvField).join(";"))];
  return `\ufeff${lines.join("\r\n")}\r\n`;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = el("a", { href: url, download: name, class: "visually-hidden" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/**
 * A data table: {columns, rows, total}. `caption` names it for screen readers; `fileName` is the CSV's.
 */
export function dataTable({ columns, rows, total }, { caption = "Tableau des résultats", fileName = "resultats.csv" } = {}) {
  const state = { sort: null, desc: false, page: 0 };
  const wrapper = el("div", { class: "table-block" });
  const status = el("p", { class: "table-status muted", "aria-live": "polite" });
  const scroller = el("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": caption });
  const table = el("table", { class: "data-table" });
  const captionNode = el("caption", { class: "visually-hidden", text: caption });
  const thead = el("thead");
  const tbody = el("tbody");
  table.append(captionNode, thead, tbody);
  scroller.append(table);
  const pager = el("div", { class: "pager" });
  const prev = el("button", { type: "button", class: "btn btn-small", text: "Page précédente" });
  const next = el("button", { type: "button", class: "btn btn-small", text: "Page suivante" });
  const pageInfo = el("span", { class: "page-info", "aria-live": "polite" });
  const csv = el("button", { type: "button", class: "btn btn-small", text: "Télécharger en CSV" });
  pager.append(prev, pageInfo, next, csv);
  wrapper.append(scroller, pager, status);

  // Figures are right-aligned; numbered labels (hour, weekday, codes, ids) are not figures.
  const LABELS = new Set(["hour", "weekday", "return_code", "session_id", "instance_id", "ligne"]);
  const numeric = columns.map((name, i) => !LABELS.has(name) && rows.length > 0
    && rows.every((r) => r[i] === null || typeof r[i] === "number"));
  const headerRow = el("tr");
  const sortButtons = columns.map((name, i) => {
    const button = el("button", { type: "button", class: "sort", text: columnLabel(name) });
    button.addEventListener("click", () => {
      if (state.sort === i) state.desc = !state.desc;
      else {
        state.sort = i;
        state.desc = numeric[i];
      }
      state.page = 0;
      render();
    });
    const th = el("th", { scope: "col", class: numeric[i] ? "num" : null }, button);
    headerRow.append(th);
    return { button, th };
  });
  thead.append(headerRow);

  function sorted() {
    if (state.sort === null) return rows;
    const i = state.sort;
    const out = [...rows].sort((a, b) => compare(a[i], b[i]));
    return state.desc ? out.reverse() : out;
  }

  function render() {
    const all = sorted();
    const pages = Math.max(1, Math.ceil(all.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    clear(tbody);
    for (const row of all.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE)) {
      tbody.append(el("tr", {}, row.map((value, i) =>
        el("td", { class: numeric[i] ? "num" : null, text: cell(value, columns[i]) }))));
    }
    sortButtons.forEach(({ th }, i) => {
      if (state.sort === i) th.setAttribute("aria-sort", state.desc ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
    pageInfo.textContent = `Page ${state.page + 1} sur ${pages}`;
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
    pager.hidden = rows.length === 0;
    const shown = rows.length;
    status.textContent = total > shown
      ? `${number(shown)} lignes affichées sur ${number(total)}.`
      : `${number(shown)} ligne${shown > 1 ? "s" : ""}.`;
  }
  prev.addEventListener("click", () => { state.page -= 1; render(); });
  next.addEventListener("click", () => { state.page += 1; render(); });
  csv.addEventListener("click", () => download(fileName, toCsv(columns, sorted())));
  wrapper.id = newId("table");
  render();
  return wrapper;
}
