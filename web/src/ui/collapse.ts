/**
 * A very long message (a pasted log, 100,000 characters) shows its beginning with
 * "Show more" (issue 14, point 7): laying out all of it at once would freeze the page,
 * and scrolling past it would take a while. Only the preview is put in the DOM until
 * the reader asks for the rest; "Show less" folds it again.
 */

import { h } from "./dom";

/** Longer than this (characters), a message shows collapsed. */
export const COLLAPSE_AT = 6000;
/** About how much of it the preview shows: characters, and lines (short lines of a log
 *  would otherwise fill more than a phone's screen). */
const PREVIEW = 1500;
const PREVIEW_LINES = 12;

/** The beginning of `text` shown collapsed: cut at a line end near PREVIEW if there is
 *  one, so a markdown preview does not stop in the middle of a line. */
export function preview(text: string): string {
  let lineEnd = -1;
  for (let line = 0; line < PREVIEW_LINES; line++) {
    lineEnd = text.indexOf("\n", lineEnd + 1);
    if (lineEnd === -1 || lineEnd > PREVIEW) break;
  }
  if (lineEnd !== -1 && lineEnd <= PREVIEW) return text.slice(0, lineEnd);
  const end = text.lastIndexOf("\n", PREVIEW);
  return text.slice(0, end > PREVIEW / 2 ? end : PREVIEW);
}

export function isLong(text: string): boolean {
  return text.length > COLLAPSE_AT;
}

/**
 * The Show more / Show less button of a long message. `draw(expanded)` puts the preview
 * (false) or the whole text (true) into the message; the button says which is shown.
 */
export function collapseToggle(body: HTMLElement, draw: (expanded: boolean) => void): HTMLButtonElement {
  const button = h("button", {
    class: "btn btn-small btn-ghost show-more",
    testid: "show-more",
    attrs: { type: "button", "aria-expanded": "false" },
  });
  let expanded = false;
  const set = (value: boolean) => {
    expanded = value;
    draw(expanded);
    body.classList.toggle("collapsed", !expanded);
    button.textContent = expanded ? "Show less" : "Show more";
    button.setAttribute("aria-expanded", String(expanded));
  };
  button.addEventListener("click", () => {
    set(!expanded);
    // Folding it again: keep the button (and the message's start) in view.
    if (!expanded) button.scrollIntoView?.({ block: "nearest" }); // (jsdom has none)
  });
  set(false);
  return button;
}
