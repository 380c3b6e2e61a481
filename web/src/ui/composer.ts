/** The message box: grows with its text, Enter sends, Shift+Enter breaks the line, Esc stops. */

import type { StopControl } from "../answer";

export interface ComposerParts {
  form: HTMLFormElement;
  input: HTMLTextAreaElement;
  send: HTMLButtonElement;
  stop: HTMLButtonElement;
  /** returns false when the text was not taken (an answer is still streaming) */
  onSend: (text: string) => boolean;
}

const MAX_HEIGHT = 240;

export class Composer implements StopControl {
  /** what Stop does while an answer streams; null when none does */
  private onStop: (() => void) | null = null;

  constructor(private readonly parts: ComposerParts) {
    const { form, input, stop } = parts;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => {
      // isComposing: Enter that confirms an IME composition is not a send.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.submit();
      }
    });
    input.addEventListener("input", () => this.update());
    stop.addEventListener("click", () => this.stop());
    this.update();
  }

  focus(): void {
    // Not on touch screens: focusing would pop the keyboard up over the answer.
    if (matchMedia("(pointer: coarse)").matches) return;
    this.parts.input.focus();
  }

  private get streaming(): boolean {
    return this.onStop !== null;
  }

  /** An answer streams and `stop` stops it (Stop replaces Send), or none does (null).
   *  `takeFocus`: the button that started the answer is gone, so the focus goes to Stop. */
  setBusy(stop: (() => void) | null, takeFocus = false): void {
    const { send, input } = this.parts;
    const button = this.parts.stop;
    const hadFocus = document.activeElement === button || document.activeElement === send;
    const streaming = stop !== null;
    this.onStop = stop;
    button.hidden = !streaming;
    button.classList.remove("stopping");
    button.setAttribute("aria-label", "Stop");
    send.hidden = streaming;
    this.update();
    if (hadFocus || (streaming && takeFocus)) (streaming ? button : input).focus();
  }

  /** Stop the answer that streams (Stop, or Esc); false when none does. */
  stop(): boolean {
    if (!this.onStop) return false;
    this.onStop();
    return true;
  }

  /** The text in the box. */
  get text(): string {
    return this.parts.input.value;
  }

  /** Put `text` in the box to be edited (a message the server refused), caret at its end. */
  setText(text: string): void {
    const { input } = this.parts;
    input.value = text;
    this.update();
    input.focus();
    input.setSelectionRange(text.length, text.length);
  }

  clear(): void {
    this.parts.input.value = "";
    this.update();
  }

  /** Stop was pressed; the answer ends when the server confirms. */
  setStopping(): void {
    // Not disabled: a disabled button would drop the keyboard focus.
    this.parts.stop.classList.add("stopping");
    this.parts.stop.setAttribute("aria-label", "Stopping");
  }

  private submit(): void {
    const text = this.parts.input.value;
    if (this.streaming || text.trim() === "") return;
    if (this.parts.onSend(text)) {
      this.parts.input.value = "";
      this.update();
    }
  }

  private update(): void {
    const { input, send } = this.parts;
    send.disabled = this.streaming || input.value.trim() === "";
    // Grow with the text up to MAX_HEIGHT, then scroll (CSSOM, allowed by the CSP).
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, MAX_HEIGHT)}px`;
    input.style.overflowY = input.scrollHeight > MAX_HEIGHT ? "auto" : "hidden";
  }
}
