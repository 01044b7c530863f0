// Entry point: sign-in, the views (#/chat, #/anomalies, #/activite, #/admin) and the session's life.
import { login, onSessionChange, restoreSession, endSession, currentSession } from "./api.js";
import { showActivity } from "./activity.js";
import { showAdmin, stopLive } from "./admin.js";
import { initAlerts, openAlerts } from "./alerts.js";
import { showAnomalies } from "./anomalies.js";
import { initChat, refreshConversations, resetChat } from "./chat.js";
import { setTimeZone, show } from "./format.js";

const ROUTES = {
  "#/chat": { view: "chat", title: "chat-title" },
  "#/anomalies": { view: "anomalies", title: "anomalies-title", open: showAnomalies },
  "#/activite": { view: "activity", title: "activity-title", open: showActivity },
  "#/alertes": { view: "alerts", title: "alerts-title", open: openAlerts },
  "#/admin": { view: "admin", title: "admin-title", open: showAdmin, admin: true },
};

const $ = (id) => document.getElementById(id);
let loginMessage = null;

function banner(message) {
  const node = $("banner");
  node.textContent = message || "";
  show(node, Boolean(message));
}

function showView(name) {
  for (const section of document.querySelectorAll("main > .view")) {
    show(section, section.id === `view-${name}`);
  }
  for (const link of document.querySelectorAll("#nav a[data-view]")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route({ focus = true } = {}) {
  const session = currentSession();
  if (!session) {
    stopLive();
    showView("login");
    document.title = "Connexion – SIO Audit";
    return;
  }
  let target = ROUTES[location.hash] || ROUTES["#/chat"];
  if (target.admin && session.user.role !== "admin") target = ROUTES["#/chat"];
  if (target.view !== "admin") stopLive();
  showView(target.view);
  document.title = `${$(target.title).textContent} – SIO Audit`;
  if (target.open) target.open();
  if (focus) $(target.title).focus();
}

function signedIn(session) {
  show($("nav"), true);
  show($("whoami"), true);
  show($("nav-admin"), session.user.role === "admin");
  $("whoami-name").textContent = `${session.user.username} (${session.user.role === "admin" ? "administrateur" : "auditeur"})`;
  refreshConversations();
}

function signedOut(message) {
  show($("nav"), false);
  show($("whoami"), false);
  resetChat();
  loginMessage = message;
  const error = $("login-error");
  error.textContent = message || "";
  show(error, Boolean(message));
  route({ focus: false });
  $("login-username").focus();
}

async function loadInfo() {
  try {
    const response = await fetch("/api/info");
    if (response.ok) setTimeZone((await response.json()).timezone);
  } catch {
    // the page still works with the default time zone
  }
}

function initLogin() {
  const form = $("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("login-username").value.trim();
    const password = $("login-password").value;
    const error = $("login-error");
    if (!username || !password) {
      error.textContent = "Saisissez votre identifiant et votre mot de passe.";
      show(error, true);
      (username ? $("login-password") : $("login-username")).focus();
      return;
    }
    $("login-submit").disabled = true;
    try {
      await login(username, password);
      $("login-password").value = "";
      show(error, false);
      banner("");
      if (!ROUTES[location.hash]) location.hash = "#/chat";
      route();
    } catch (err) {
      error.textContent = err.message;
      show(error, true);
      $("login-password").focus();
    } finally {
      $("login-submit").disabled = false;
    }
  });
  $("logout").addEventListener("click", () => endSession("Vous êtes déconnecté."));
}

function main() {
  // Handlers first: the sign-in form must never be submitted by the browser itself.
  loadInfo();  // the time zone of dates; the page works meanwhile
  initLogin();
  initChat();
  initAlerts();
  onSessionChange((session, message) => {
    if (session) signedIn(session);
    else signedOut(message);
  });
  // Only the views' addresses route; the skip link moves the focus without leaving the view.
  window.addEventListener("hashchange", () => { if (ROUTES[location.hash]) route(); });
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    $("main").focus();
  });
  const session = restoreSession();
  if (!session) signedOut(loginMessage);
  else route({ focus: false });
}

main();
