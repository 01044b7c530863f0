// What the admin editors of the Alertes view share (policies.js, schedules.js): lists typed as
// comma-separated text, saving through POST (new) or PUT (edited), the error line under a form,
// and a « Supprimer » button confirmed by a second click (no dialog box).
import { currentSession, getJSON } from "./api.js";
import { el, show } from "./format.js";

export const isAdmin = () => currentSession()?.user?.role === "admin";
export const list = (value) => value.split(",").map((v) => v.trim()).filter(Boolean);
export const joined = (values) => (values || []).join(", ");

/** POST `base` (a new item) or PUT `base/{id}` (an edited one); the item as saved. */
export function saveItem(base, body, id = null) {
  return getJSON(id ? `${base}/${encodeURIComponent(id)}` : base, { method: id ? "PUT" : "POST", json: body });
}

/** The form's error line: the message (the API's, in French), or hidden when null. */
export function formError(node, message) {
  node.textContent = message || "";
  show(node, Boolean(message));
}

/**
 * The submit handler of an editor's form: a name is required (`missing` says so, under the form),
 * then `save(body)`; the API's refusal is shown under the form, a success runs `done`.
 */
export function submitHandler({ error, nameInput, missing, body, save, done }) {
  return async (event) => {
    event.preventDefault();
    const data = body();
    if (!data.name) {
      formError(error(), missing);
      nameInput().focus();
      return;
    }
    try {
      await save(data);
      done();
    } catch (err) {
      formError(error(), err.message);
    }
  };
}

/** A « Supprimer » button: the first click asks « Confirmer la suppression », the second runs `remove`. */
export function deleteButton(remove) {
  const button = el("button", { type: "button", class: "btn btn-quiet", text: "Supprimer" });
  button.addEventListener("click", async () => {
    if (button.dataset.confirm !== "1") {
      button.dataset.confirm = "1";
      button.textContent = "Confirmer la suppression";
      return;
    }
    await remove();
  });
  return button;
}
