/** The scrolling message area: it follows the newest text while the reader is at the
 *  bottom, and offers a "scroll down" button once they scrolled up. */

/** Closer to the bottom than this (px) counts as at the bottom. */
const NEAR_BOTTOM = 80;

export class Scroller {
  private stickToBottom = true;
  private frame: number | null = null;

  constructor(private readonly scroller: HTMLElement, scrollDown: HTMLButtonElement, onScrollDown: () => void) {
    scroller.addEventListener("scroll", () => {
      const distance = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;
      this.stickToBottom = distance < NEAR_BOTTOM;
      scrollDown.hidden = this.stickToBottom;
    }, { passive: true });
    scrollDown.addEventListener("click", () => {
      this.stickToBottom = true;
      this.toBottom(true);
      onScrollDown();
    });
  }

  /** Keep the newest text in view while the reader is at the bottom (once per frame). */
  follow(): void {
    if (!this.stickToBottom || this.frame !== null) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      if (this.stickToBottom) this.toBottom(false);
    });
  }

  /** Go to the bottom and stay there (a new message, a conversation opened). */
  stick(): void {
    this.stickToBottom = true;
    this.toBottom(false);
  }

  private toBottom(smooth: boolean): void {
    this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: smooth ? "smooth" : "auto" });
  }
}
