/** The live region (#announcer) that tells screen readers what changed on the page. */

export class Announcer {
  constructor(private readonly region: HTMLElement) {}

  say(text: string): void {
    this.region.textContent = "";
    // A change of text is what a screen reader announces; clear first so a repeat counts.
    requestAnimationFrame(() => { this.region.textContent = text; });
  }
}
