/**
 * Markdown to safe DOM: marked renders, DOMPurify sanitizes the rendered HTML (issue 4,
 * "Safety": model output is untrusted input), then code blocks get a copy button.
 *
 * What survives: a fixed set of formatting tags; links only to http(s) and mailto,
 * opened in a new tab with rel="noopener noreferrer nofollow"; no event handler, style,
 * script, iframe, svg, math, form or data-* attribute. Images are never loaded: each
 * becomes a link to its URL (an image URL can carry data out the moment it loads).
 */

import DOMPurify from "dompurify";
import { Marked, type Tokens } from "marked";
import { highlight } from "./highlight";

const ALLOWED_TAGS = [
  "a", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1", "h2", "h3",
  "h4", "h5", "h6", "hr", "i", "input", "kbd", "li", "ol", "p", "pre", "s", "span",
  "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
];
const ALLOWED_ATTR = ["href", "title", "class", "start", "align", "type", "checked", "disabled"];
/** highlight.js token classes and the language of a code block; nothing of the page's. */
const SAFE_CLASS = /^(?:hljs(?:-[\w-]+)?|language-[\w+#.-]+|[\w-]+_)$/;
const SAFE_URL = /^(?:https?:|mailto:)/i;

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

const marked = new Marked({
  gfm: true,
  // Models break lines with a single newline and mean it.
  breaks: true,
  renderer: {
    html({ text }: Tokens.HTML | Tokens.Tag): string {
      // Cosmetic, not the defence (DOMPurify is): Chromium reports a CSP violation for
      // every handler or style attribute it meets even in DOMPurify's inert parsing
      // document. Renaming them first keeps the console quiet; nothing ran either way.
      return text.replace(/([\s/"'])(on[a-z]+|style)(\s*=)/gi, "$1data-removed-$2$3");
    },
    code({ text, lang }: Tokens.Code): string {
      const language = (lang ?? "").trim().split(/\s+/)[0].toLowerCase();
      const highlighted = highlight(text, language);
      const cls = /^[\w+#.-]+$/.test(language) ? ` class="hljs language-${language}"` : ` class="hljs"`;
      return `<pre><code${cls}>${highlighted ?? escapeHtml(text)}\n</code></pre>\n`;
    },
  },
});

const purify = DOMPurify(window);

purify.addHook("uponSanitizeElement", (node, data) => {
  // Every <img>, from markdown or raw HTML, becomes a link to its URL. This runs in
  // DOMPurify's inert document, so nothing is fetched; the link is inserted after the
  // image and sanitized in its turn (its href must pass SAFE_URL); the image itself is
  // not an allowed tag and is removed.
  if (data.tagName !== "img" || !(node instanceof Element) || !node.parentNode) return;
  const link = node.ownerDocument.createElement("a");
  const src = node.getAttribute("src") ?? "";
  link.setAttribute("href", src);
  link.setAttribute("class", "image_");
  const title = node.getAttribute("title");
  if (title) link.setAttribute("title", title);
  link.textContent = node.getAttribute("alt")?.trim() || src || "image";
  node.parentNode.insertBefore(link, node.nextSibling);
});

purify.addHook("uponSanitizeAttribute", (_node, data) => {
  if (data.attrName === "class") {
    const kept = data.attrValue.split(/\s+/).filter((c) => SAFE_CLASS.test(c)).join(" ");
    data.attrValue = kept;
    data.keepAttr = kept !== "";
  }
});

purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    const href = node.getAttribute("href");
    if (href !== null && SAFE_URL.test(href.trim())) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    } else {
      node.removeAttribute("href");
    }
  } else if (node.nodeName === "INPUT") {
    // Only GFM task list boxes, and read-only.
    node.setAttribute("type", "checkbox");
    node.setAttribute("disabled", "");
  }
});

const PURIFY_CONFIG = {
  ALLOWED_TAGS,
  ALLOWED_ATTR,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  // Not ALLOWED_URI_REGEXP: DOMPurify tests it against every attribute that is not a
  // known URI-safe one (align, start, type...). Links are checked in the hook above.
  RETURN_DOM_FRAGMENT: true as const,
};

/** Rendered and sanitized HTML, as a string (tests, and what a fragment holds). */
export function markdownToSafeHtml(source: string): string {
  const container = document.createElement("div");
  container.append(renderMarkdown(source));
  return container.innerHTML;
}

/** Render markdown to a sanitized fragment of the current document, code blocks decorated. */
export function renderMarkdown(source: string): DocumentFragment {
  const html = marked.parse(source, { async: false });
  const fragment = purify.sanitize(html, PURIFY_CONFIG);
  decorateCodeBlocks(fragment);
  return fragment;
}

/** Wrap each <pre> with a bar: its language and a copy button (handled by delegation). */
function decorateCodeBlocks(root: DocumentFragment): void {
  for (const pre of Array.from(root.querySelectorAll("pre"))) {
    const code = pre.querySelector("code");
    const language = /(?:^|\s)language-([\w+#.-]+)/.exec(code?.className ?? "")?.[1] ?? "";
    const wrapper = document.createElement("div");
    wrapper.className = "code-block";
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const label = document.createElement("span");
    label.className = "code-lang";
    label.textContent = language || "text";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-btn";
    button.dataset.action = "copy-code";
    button.dataset.testid = "copy-code";
    button.setAttribute("aria-label", `Copy ${language || "code"}`);
    button.textContent = "Copy";
    bar.append(label, button);
    pre.replaceWith(wrapper);
    wrapper.append(bar, pre);
  }
}
