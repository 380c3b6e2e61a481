/** The address of the page and the conversation it shows (issue 4): `/` is a new chat,
 *  `/c/{id}` a conversation. The server serves index.html at both. */

export function conversationPath(id: string): string {
  return `/c/${encodeURIComponent(id)}`;
}

/** The conversation `path` shows; null for a new chat (any path that is not /c/{id}). */
export function conversationOf(path: string): string | null {
  const match = /^\/c\/([^/]+)\/?$/.exec(path);
  return match ? decodeURIComponent(match[1]) : null;
}

export class Router {
  /** `show` opens what an address says: a conversation's id, or null for a new chat. */
  constructor(private readonly show: (id: string | null) => void) {}

  /** Follow the browser's Back and Forward. */
  start(): void {
    window.addEventListener("popstate", () => this.route());
  }

  /** Show what the address bar says. */
  route(): void {
    this.show(conversationOf(location.pathname));
  }

  /** The page now shows `id` (null: a new chat): a new history entry, unless it is there. */
  went(id: string | null): void {
    const path = id === null ? "/" : conversationPath(id);
    if (location.pathname !== path) history.pushState(null, "", path);
  }
}
