/** The message box: grows with its text, Enter sends, Shift+Enter breaks the line, Esc stops. */

export interface ComposerParts {
  form: HTMLFormElement;
  input: HTMLTextAreaElement;
  send: HTMLButtonElement;
  stop: HTMLButtonElement;
  /** returns false when the text was not taken (an answer is still streaming) */
  onSend: (text: string) => boolean;
  onStop: () => void;
}

const MAX_HEIGHT = 240;

export class Composer {
  private streaming = false;

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
    stop.addEventListener("click", () => parts.onStop());
    this.update();
  }

  focus(): void {
    // Not on touch screens: focusing would pop the keyboard up over the answer.
    if (matchMedia("(pointer: coarse)").matches) return;
    this.parts.input.focus();
  }

  setStreaming(streaming: boolean): void {
    const { send, stop, input } = this.parts;
    const hadFocus = document.activeElement === stop || document.activeElement === send;
    this.streaming = streaming;
    stop.hidden = !streaming;
    stop.classList.remove("stopping");
    stop.setAttribute("aria-label", "Stop");
    send.hidden = streaming;
    this.update();
    if (hadFocus) (streaming ? stop : input).focus();
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
