// The public API, as any client uses it: bearer token, JSON errors {detail, code}, SSE over fetch.
// The token lives in sessionStorage (gone when the tab closes) with its expiry; a 401 or an expired
// token signs the user out with a message, a 429 says when to try again.

const KEY = "sio-audit-session";
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

let session = load();

function load() {
  try {
    const raw = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (raw && raw.token && raw.expiresAt > Date.now()) return raw;
  } catch {
    // unreadable storage: no session
  }
  sessionStorage.removeItem(KEY);
  return null;
}

export function currentSession() {
  if (session && session.expiresAt <= Date.now()) {
    endSession("Votre session a expiré. Reconnectez-vous.");
  }
  return session;
}

/** Called with (session, message) whenever the user signs in or out. */
export function onSessionChange(fn) {
  listeners.add(fn);
}

let expiryTimer = null;

function setSession(value, message = null) {
  session = value;
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
  clearTimeout(expiryTimer);
  if (value) {
    // setTimeout holds at most ~24.8 days; tokens last hours.
    const delay = Math.min(value.expiresAt - Date.now(), 2 ** 31 - 1);
    expiryTimer = setTimeout(() => endSession("Votre session a expiré. Reconnectez-vous."), delay);
  }
  for (const fn of listeners) fn(value, message);
}

export function endSession(message = null) {
  setSession(null, message);
}

export function restoreSession() {
  const value = currentSession();
  if (value) setSession(value);
  return value;
}

function retryAfterText(seconds) {
  if (seconds == null || Number.isNaN(seconds)) return "";
  if (seconds < 60) return ` Réessayez dans ${seconds} s.`;
  return ` Réessayez dans ${Math.ceil(seconds / 60)} min.`;
}

async function errorFrom(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON
  }
  const retry = parseInt(response.headers.get("Retry-After") || "", 10);
  const retryAfter = Number.isNaN(retry) ? null : retry;
  let message = (body && typeof body.detail === "string" && body.detail) || "";
  const code = (body && body.code) || `http_${response.status}`;
  if (response.status === 429) {
    message = message || "Trop de requêtes.";
    if (!/Réessayez/.test(message)) message += retryAfterText(retryAfter);
  } else if (response.status === 401) {
    message = message || "Authentification requise.";
  } else if (response.status === 403) {
    message = message || "Action réservée aux administrateurs.";
  } else if (response.status === 422 && body && Array.isArray(body.errors) && body.errors.length) {
    const first = body.errors[0];
    message = `${message || "Requête invalide"} : ${first.message || first.msg || ""}`.trim();
  } else if (!message) {
    message = response.status >= 500
      ? "Le service a rencontré une erreur. Réessayez dans un instant."
      : `Erreur ${response.status}.`;
  }
  return new ApiError(response.status, code, message, retryAfter);
}

/** Sign in with the same accounts as the API (OAuth2 password form). */
export async function login(username, password) {
  const form = new URLSearchParams({ username, password });
  let response;
  try {
    response = await fetch("/api/auth/login", { method: "POST", body: form });
  } catch {
    throw new ApiError(0, "network_error", "Le service ne répond pas. Vérifiez qu'il est démarré.");
  }
  if (!response.ok) throw await errorFrom(response);
  const token = await response.json();
  const expiresAt = Date.now() + (token.expires_in - 5) * 1000;
  const me = await fetch("/api/auth/me", { headers: { Authorization: `Bearer ${token.access_token}` } });
  if (!me.ok) throw await errorFrom(me);
  const user = await me.json();
  setSession({ token: token.access_token, expiresAt, user });
  return user;
}

function headers(extra = {}) {
  const value = currentSession();
  if (!value) throw new ApiError(401, "not_authenticated", "Votre session a expiré. Reconnectez-vous.");
  return { Authorization: `Bearer ${value.token}`, ...extra };
}

/** A request to the API; a 401 ends the session (with a message), other errors throw ApiError. */
export async function request(path, { method = "GET", json, body, signal, accept } = {}) {
  const extra = {};
  if (json !== undefined) extra["Content-Type"] = "application/json";
  if (accept) extra.Accept = accept;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(extra),
      body: json !== undefined ? JSON.stringify(json) : body,
      signal,
    });
  } catch (err) {
    if (err && err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "Le service ne répond pas. Vérifiez votre connexion.");
  }
  if (response.status === 401) {
    const error = await errorFrom(response);
    endSession("Votre session a expiré ou n'est plus valide. Reconnectez-vous.");
    throw error;
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function getJSON(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

/**
 * Server-sent events read with fetch (a browser EventSource cannot send the Authorization header).
 * Calls onEvent(name, data) for each event; data is parsed as JSON when it is JSON.
 */
export async function stream(path, { method = "GET", json, signal, onEvent }) {
  const response = await request(path, { method, json, signal, accept: "text/event-stream" });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const dispatch = (block) => {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    const text = data.join("\n");
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // plain text (a token)
    }
    onEvent(name, parsed);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) !== -1) {
      dispatch(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
    }
  }
  if (buffer.trim()) dispatch(buffer);
}

/** Upload with progress (fetch has no upload progress): XMLHttpRequest, same token and errors. */
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    let auth;
    try {
      auth = headers();
    } catch (err) {
      reject(err);
      return;
    }
    xhr.setRequestHeader("Authorization", auth.Authorization);
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener("load", async () => {
      const response = new Response(xhr.response, {
        status: xhr.status,
        headers: { "Content-Type": "application/json", "Retry-After": xhr.getResponseHeader("Retry-After") || "" },
      });
      if (xhr.status === 401) {
        const error = await errorFrom(response);
        endSession("Votre session a expiré ou n'est plus valide. Reconnectez-vous.");
        reject(error);
      } else if (xhr.status < 200 || xhr.status >= 300) {
        reject(await errorFrom(response));
      } else {
        onProgress(1);
        resolve(JSON.parse(xhr.response));
      }
    });
    xhr.addEventListener("error", () =>
      reject(new ApiError(0, "network_error", "L'envoi a échoué : le service ne répond pas.")),
    );
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}
