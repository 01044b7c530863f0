// Administration: import an audit export (progress bar, line-level error report), upload documents,
// the Oracle pool status with live metrics read from the SSE stream with fetch (an EventSource cannot
// send the Authorization header).
import { getJSON, request, stream, upload } from "./api.js";
import { clear, dateTime, el, number } from "./format.js";
import { dataTable } from "./table.js";

let liveAbort = null;
let started = false;

function setProgress(fraction) {
  const value = Math.round(fraction * 100);
  document.getElementById("import-progress").value = value;
  document.getElementById("import-percent").textContent = `${value} %`;
}

async function importFile(event) {
  event.preventDefault();
  const input = document.getElementById("import-file");
  const status = document.getElementById("import-status");
  const errors = clear(document.getElementById("import-errors"));
  const file = input.files[0];
  if (!file) {
    status.textContent = "Choisissez un fichier.";
    input.focus();
    return;
  }
  setProgress(0);
  status.textContent = `Envoi de « ${file.name} »…`;
  try {
    const result = await upload("/api/audit/import", file, (f) => {
      setProgress(f);
      if (f >= 1) status.textContent = `« ${file.name} » envoyé, import en cours…`;
    });
    const n = result.errors.length;
    status.textContent = `Import terminé : ${number(result.inserted)} événement(s) ajouté(s), `
      + `${number(result.duplicates)} doublon(s) ignoré(s), ${number(n)} ligne(s) en erreur.`;
    if (n) {
      errors.append(el("h3", { text: "Lignes en erreur" }), dataTable({
        columns: ["ligne", "message"],
        rows: result.errors.map((e) => [e.line, e.message]),
        total: n,
      }, { caption: "Lignes en erreur de l'import", fileName: "erreurs-import.csv" }));
    }
  } catch (err) {
    status.textContent = `Import refusé : ${err.message}`;
  }
}

async function listFiles() {
  const box = clear(document.getElementById("files-list"));
  try {
    const { files } = await getJSON("/api/files");
    if (!files.length) {
      box.append(el("p", { class: "muted", text: "Aucun document." }));
      return;
    }
    const list = el("ul", { class: "files" });
    for (const f of files) {
      list.append(el("li", {},
        el("span", { text: `${f.name} — ${f.type}, ${number(Math.ceil(f.size / 1024))} Ko, ${dateTime(f.created_at)}` }),
        el("button", {
          type: "button", class: "btn btn-small", text: "Supprimer", "aria-label": `Supprimer le document ${f.name}`,
          onclick: async () => {
            try {
              await request(`/api/files/${encodeURIComponent(f.id)}`, { method: "DELETE" });
              document.getElementById("files-status").textContent = `Document « ${f.name} » supprimé.`;
              listFiles();
            } catch (err) {
              document.getElementById("files-status").textContent = err.message;
            }
          },
        })));
    }
    box.append(list);
  } catch (err) {
    box.append(el("p", { class: "error", text: err.message }));
  }
}

async function uploadDocument(event) {
  event.preventDefault();
  const input = document.getElementById("files-file");
  const status = document.getElementById("files-status");
  const file = input.files[0];
  if (!file) {
    status.textContent = "Choisissez un document.";
    input.focus();
    return;
  }
  status.textContent = `Envoi de « ${file.name} »…`;
  try {
    const meta = await upload("/api/files", file, () => {});
    const notes = (meta.notes || []).join(" ");
    status.textContent = `Document « ${meta.name} » enregistré (${meta.type}).${notes ? ` ${notes}` : ""}`;
    input.value = "";
    listFiles();
  } catch (err) {
    status.textContent = `Document refusé : ${err.message}`;
  }
}

function poolTable(pool) {
  const rows = [
    ["Configuré", pool.configured ? "oui" : `non (manque : ${(pool.missing || []).join(", ")})`],
    ["Pool ouvert", pool.pool_open ? "oui" : "non"],
    ["Connexions ouvertes", number(pool.open)],
    ["Occupées", number(pool.busy)],
    ["Libres", number(pool.idle)],
    ["En attente", number(pool.waiting)],
    ["Minimum / maximum", `${number(pool.min)} / ${number(pool.max)}`],
  ];
  if (pool.connect_string) rows.push(["Base", pool.connect_string]);
  return el("dl", { class: "facts" }, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

async function refreshPool() {
  const box = clear(document.getElementById("oracle-pool"));
  try {
    box.append(poolTable(await getJSON("/api/oracle/pool-status")));
  } catch (err) {
    box.append(el("p", { class: "error", text: err.message }));
  }
}

function showMetrics(m) {
  const box = clear(document.getElementById("oracle-metrics"));
  const lat = m.latency_ms || {};
  const ms = (v) => (v === null || v === undefined ? "–" : `${number(v)} ms`);
  const queries = Object.values(m.queries || {}).reduce((a, b) => a + b, 0);
  const errors = Object.values(m.errors || {}).reduce((a, b) => a + b, 0);
  const rows = [
    ["Mis à jour", dateTime(m.time)],
    ["Connexions ouvertes / occupées", `${number(m.pool.open)} / ${number(m.pool.busy)}`],
    ["Requêtes", number(queries)],
    ["Erreurs", number(errors)],
    ["Lignes renvoyées", number(m.rows_returned || 0)],
    ["Latence p50 / p95 / max", `${ms(lat.p50)} / ${ms(lat.p95)} / ${ms(lat.max)}`],
    ["Flux ouverts", number(m.streams || 0)],
  ];
  box.append(el("dl", { class: "facts live" }, rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])));
  clear(document.getElementById("oracle-pool")).append(poolTable(m.pool));
}

export function stopLive() {
  if (liveAbort) liveAbort.abort();
  liveAbort = null;
  const button = document.getElementById("oracle-live");
  if (button) {
    button.setAttribute("aria-pressed", "false");
    button.textContent = "Suivre en direct";
  }
}

async function toggleLive() {
  const status = document.getElementById("oracle-status");
  if (liveAbort) {
    stopLive();
    status.textContent = "Suivi en direct arrêté.";
    return;
  }
  const button = document.getElementById("oracle-live");
  liveAbort = new AbortController();
  button.setAttribute("aria-pressed", "true");
  button.textContent = "Arrêter le suivi";
  status.textContent = "Suivi en direct des métriques…";
  try {
    await stream("/api/oracle/metrics/stream", {
      signal: liveAbort.signal,
      onEvent(name, data) {
        if (name === "metrics" && data && data.pool) showMetrics(data);
      },
    });
    status.textContent = "Le flux de métriques s'est terminé.";
  } catch (err) {
    if (err.name !== "AbortError") status.textContent = err.message;
  } finally {
    if (liveAbort && !liveAbort.signal.aborted) stopLive();
  }
}

export function showAdmin() {
  if (!started) {
    started = true;
    document.getElementById("import-form").addEventListener("submit", importFile);
    document.getElementById("files-form").addEventListener("submit", uploadDocument);
    document.getElementById("oracle-refresh").addEventListener("click", refreshPool);
    document.getElementById("oracle-live").addEventListener("click", toggleLive);
  }
  refreshPool();
  listFiles();
}
