/** An error message with a Retry action: errors are shown, never a silent stall. */

import { h, icon, iconButton } from "./dom";

export interface BannerOptions {
  message: string;
  /** what Retry does; no Retry button without it */
  retry?: () => void;
  retryLabel?: string;
  /** the button's data-testid (default "retry"): an action that is no retry says so */
  retryTestid?: string;
  /** Retry is enabled only after this many seconds (429 Retry-After), counting down */
  retryAfter?: number | null;
  /** show a close button */
  onDismiss?: () => void;
}

export function errorBanner(options: BannerOptions): HTMLElement {
  const text = h("p", { class: "banner-text", text: options.message });
  const banner = h(
    "div",
    { class: "banner banner-error", testid: "error-banner", attrs: { role: "alert" } },
    icon("alert"),
    text,
  );
  if (options.retry) {
    const label = options.retryLabel ?? "Retry";
    const button = h("button", {
      class: "btn btn-small",
      testid: options.retryTestid ?? "retry",
      text: label,
      attrs: { type: "button" },
    });
    const retry = options.retry;
    button.addEventListener("click", () => {
      button.disabled = true;
      retry();
    });
    let wait = Math.ceil(options.retryAfter ?? 0);
    if (wait > 0) {
      button.disabled = true;
      button.textContent = `${label} in ${wait} s`;
      const timer = setInterval(() => {
        wait -= 1;
        if (!banner.isConnected || wait <= 0) {
          clearInterval(timer);
          button.disabled = false;
          button.textContent = label;
        } else {
          button.textContent = `${label} in ${wait} s`;
        }
      }, 1000);
    }
    banner.append(button);
  }
  if (options.onDismiss) {
    const dismiss = options.onDismiss;
    const close = iconButton("close", "Dismiss", { class: "icon-btn banner-close" });
    close.addEventListener("click", () => {
      banner.remove();
      dismiss();
    });
    banner.append(close);
  }
  return banner;
}

/** The page's own banner above the message box (errors not tied to one answer). */
export class BannerSlot {
  constructor(private readonly slot: HTMLElement) {}

  /** Show `message`, replacing the one shown; Retry clears it first. */
  show(message: string, retry?: () => void, retryLabel?: string, retryTestid?: string): void {
    this.slot.replaceChildren(errorBanner({
      message,
      retry: retry ? () => { this.clear(); retry(); } : undefined,
      retryLabel,
      retryTestid,
      onDismiss: () => undefined,
    }));
  }

  clear(): void {
    this.slot.replaceChildren();
  }
}
