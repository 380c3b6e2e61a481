/** The sidebar as a drawer on narrow screens: the menu button opens it over the page,
 *  the close button, the backdrop and Esc close it. */

export interface DrawerParts {
  app: HTMLElement;
  toggle: HTMLButtonElement;
  close: HTMLButtonElement;
  backdrop: HTMLElement;
  /** where the focus goes when it opens if no conversation is current */
  fallbackFocus: HTMLElement;
}

export class Drawer {
  constructor(private readonly parts: DrawerParts) {
    parts.toggle.addEventListener("click", () => this.open());
    parts.close.addEventListener("click", () => this.close());
    parts.backdrop.addEventListener("click", () => this.close());
  }

  get isOpen(): boolean {
    return this.parts.app.classList.contains("sidebar-open");
  }

  open(): void {
    const { app, toggle, backdrop, fallbackFocus } = this.parts;
    app.classList.add("sidebar-open");
    toggle.setAttribute("aria-expanded", "true");
    backdrop.hidden = false;
    (document.querySelector<HTMLElement>(".conv-link[aria-current=page]") ?? fallbackFocus).focus();
  }

  close(): void {
    if (!this.isOpen) return;
    const { app, toggle, backdrop } = this.parts;
    app.classList.remove("sidebar-open");
    toggle.setAttribute("aria-expanded", "false");
    backdrop.hidden = true;
  }

  /** Esc: close it and give the focus back to the menu button; false when it was closed. */
  dismiss(): boolean {
    if (!this.isOpen) return false;
    this.close();
    this.parts.toggle.focus();
    return true;
  }
}
