// French formatting of numbers, dates and column names; small DOM helpers (text nodes only, never HTML strings).

let timeZone = "Europe/Paris";

export function setTimeZone(tz) {
  if (tz) timeZone = tz;
}

export function appTimeZone() {
  return timeZone;
}

const numberFormat = new Intl.NumberFormat("fr-FR", { maximumFractionDigits: 2 });

export function number(value) {
  return typeof value === "number" ? numberFormat.format(value) : String(value);
}

export const WEEKDAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"];

export const COLUMN_LABELS = {
  event_timestamp: "Date et heure",
  os_username: "Utilisateur OS",
  userhost: "Machine",
  terminal: "Terminal",
  dbusername: "Utilisateur",
  client_program_name: "Programme",
  action_name: "Action",
  return_code: "Code retour",
  object_schema: "Schéma",
  object_name: "Objet",
  sql_text: "Texte SQL",
  sql_binds: "Variables SQL",
  session_id: "Session",
  authentication_type: "Authentification",
  unified_audit_policies: "Politiques d'audit",
  system_privilege_used: "Privilège système",
  instance_id: "Instance",
  count: "Nombre",
  distinct: "Valeurs distinctes",
  sessions: "Sessions",
  avg_s: "Durée moyenne (s)",
  max_s: "Durée max. (s)",
  min_s: "Durée min. (s)",
  first: "Première fois",
  last: "Dernière fois",
  part: "Partie",
  total: "Total",
  percent: "Pourcentage",
  hour: "Heure",
  day: "Jour",
  weekday: "Jour de la semaine",
  week: "Semaine",
  month: "Mois",
  period: "Période",
  windows: "Fenêtres",
  start: "Début",
  end: "Fin",
  duration_s: "Durée (s)",
  events: "Événements",
  type: "Type",
  severity: "Gravité",
  title: "Titre",
  explanation: "Explication",
  fichier: "Fichier",
  passage: "Passage",
  ligne: "Ligne",
  message: "Message",
  label: "Libellé",
  sql_text_sample: "Exemple de SQL",
};

export function columnLabel(name) {
  return COLUMN_LABELS[name] || name;
}

const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/;
const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;
const ISO_MONTH = /^\d{4}-\d{2}$/;

export function dateTime(value) {
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return new Intl.DateTimeFormat("fr-FR", {
    timeZone, day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit",
    second: "2-digit",
  }).format(date);
}

export function dayLabel(value) {
  const [y, m, d] = value.split("-").map(Number);
  const date = new Date(Date.UTC(y, m - 1, d, 12));
  return new Intl.DateTimeFormat("fr-FR", {
    timeZone: "UTC", weekday: "short", day: "2-digit", month: "2-digit",
  }).format(date);
}

function monthLabel(value) {
  const [y, m] = value.split("-").map(Number);
  return new Intl.DateTimeFormat("fr-FR", { timeZone: "UTC", month: "long", year: "numeric" })
    .format(new Date(Date.UTC(y, m - 1, 15)));
}

/** A cell of `data` as French text, knowing its column. */
export function cell(value, column) {
  if (value === null || value === undefined) return "–";
  if (column === "weekday" && typeof value === "number") return WEEKDAYS[value - 1] || String(value);
  if (column === "hour" && typeof value === "number") return `${value} h`;
  if (column === "return_code" && typeof value === "number") {
    return value === 0 ? "0 (succès)" : `ORA-${String(value).padStart(5, "0")}`;
  }
  if (column === "session_id" || column === "instance_id") return String(value);
  if (column === "period") return value === "p1" ? "période 1" : value === "p2" ? "période 2" : String(value);
  if (column === "percent" && typeof value === "number") return `${number(value)} %`;
  if (typeof value === "number") return number(value);
  if (typeof value === "boolean") return value ? "oui" : "non";
  if (typeof value === "string") {
    if (ISO_DATETIME.test(value)) return dateTime(value);
    if (column === "day" && ISO_DAY.test(value)) return dayLabel(value);
    if (column === "month" && ISO_MONTH.test(value)) return monthLabel(value);
    return value;
  }
  return JSON.stringify(value);
}

/** Short label of a time bucket for a chart axis. */
export function bucketLabel(value, column) {
  if (column === "day" && typeof value === "string" && ISO_DAY.test(value)) return dayLabel(value);
  return cell(value, column);
}

/** YYYY-MM-DD of a Date in the app's time zone. */
export function localDay(date = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(date);
}

/** dd/mm/yyyy of a Date (or ISO string) in the app's time zone. */
export function frenchDay(value) {
  return new Intl.DateTimeFormat("fr-FR", { timeZone, day: "2-digit", month: "2-digit", year: "numeric" })
    .format(new Date(value));
}

/** The local hour (0-23) of a Date or ISO string in the app's time zone. */
export function frenchHour(value) {
  const parts = new Intl.DateTimeFormat("fr-FR", { timeZone, hour: "numeric", hourCycle: "h23" })
    .formatToParts(new Date(value));
  return Number(parts.find((p) => p.type === "hour").value);
}

/** createElement with attributes, properties and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

let uid = 0;
export function newId(prefix = "id") {
  uid += 1;
  return `${prefix}-${uid}`;
}
