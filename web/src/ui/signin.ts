/**
 * The sign-in form, shown when the server needs an API key (GET /api/session) and
 * whenever a request gets a 401 later. A modal <dialog>: the page behind it is inert
 * (nothing typed there is lost, nothing there can be used without a key) and Esc does
 * not dismiss it, since the page cannot work until a key is accepted.
 */

import { Unauthorized } from "../api";
import { describeFailure } from "../format";

export interface SignInParts {
  dialog: HTMLDialogElement;
  form: HTMLFormElement;
  /** why the form is shown (first visit, or a session that ended) */
  reason: HTMLElement;
  input: HTMLInputElement;
  error: HTMLElement;
  submit: HTMLButtonElement;
  /** POST /api/session: resolves when the key is accepted */
  signIn: (key: string) => Promise<void>;
  signedIn: () => void;
}

export const REJECTED = "That key was not accepted.";
export const FIRST_VISIT = "This server needs an API key. Ask whoever runs it for one.";
export const SESSION_ENDED = "The server no longer accepts this browser's key (revoked, or the sign-in " +
  "expired). Sign in again: what you typed is kept.";

export class SignInForm {
  private wanted = false;
  private busy = false;

  constructor(private readonly parts: SignInParts) {
    const { dialog, form, input } = parts;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.submit();
    });
    // Esc would close a modal dialog; there is nothing to go back to without a key.
    dialog.addEventListener("cancel", (event) => event.preventDefault());
    // Chromium lets a second Esc close it anyway (close watchers): open it again.
    dialog.addEventListener("close", () => {
      if (this.wanted) this.open();
    });
    input.addEventListener("input", () => this.setError(null));
  }

  get shown(): boolean {
    return this.wanted;
  }

  show(reason: string = FIRST_VISIT): void {
    this.parts.reason.textContent = reason;
    if (this.wanted) return;
    this.wanted = true;
    this.setError(null);
    this.parts.input.value = "";
    this.open();
    this.parts.input.focus();
  }

  hide(): void {
    this.wanted = false;
    const { dialog } = this.parts;
    if (typeof dialog.close === "function") dialog.close();
    else dialog.removeAttribute("open");
  }

  private open(): void {
    const { dialog } = this.parts;
    if (dialog.open) return;
    // jsdom (the unit tests) has no showModal; every browser the page supports has.
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
  }

  private async submit(): Promise<void> {
    const { input, submit } = this.parts;
    const key = input.value.trim();
    if (this.busy) return;
    if (key === "") {
      this.setError("Enter an API key.");
      input.focus();
      return;
    }
    this.busy = true;
    submit.disabled = true;
    try {
      await this.parts.signIn(key);
    } catch (error) {
      this.setError(error instanceof Unauthorized ? REJECTED : describeFailure(error));
      input.select();
      input.focus();
      return;
    } finally {
      this.busy = false;
      submit.disabled = false;
    }
    // The cookie holds the key now; the page keeps no copy of it.
    input.value = "";
    this.hide();
    this.parts.signedIn();
  }

  private setError(message: string | null): void {
    const { error, input } = this.parts;
    error.textContent = message ?? "";
    error.hidden = message === null;
    if (message === null) input.removeAttribute("aria-invalid");
    else input.setAttribute("aria-invalid", "true");
  }
}
