/** The tokenrelay HTTP API: types of its JSON (stream events included) and the
 *  non-streaming calls. Every type the page shares between modules is declared here. */

export type MessageStatus = "streaming" | "complete" | "cancelled" | "error" | "interrupted";

export interface Usage {
  input_tokens?: number | null;
  output_tokens?: number | null;
}

export interface Timings {
  ttft_ms?: number | null;
  tokens_per_s?: number | null;
  total_ms?: number | null;
}

/** Why an answer failed: stored with it, and the data of an `error` event. */
export interface MessageError {
  code: string;
  message: string;
}

/** A tool call the model made, assembled (`done.tool_calls`, a stored answer's). */
export interface ToolCall {
  id: string;
  name: string;
  /** JSON text, as the model wrote it (not always valid JSON) */
  arguments: string;
}

export interface StoredMessage {
  id: string;
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  status: MessageStatus;
  model: string | null;
  created: string;
  stream_id: string | null;
  reply_to: string | null;
  error: MessageError | null;
  usage: Usage | null;
  timings: Timings | null;
  /** the model's reasoning ("" if none); servers before issue 13 leave it out */
  reasoning?: string;
  tool_calls?: ToolCall[] | null;
  /** a `tool` message: the call it is the result of */
  tool_call_id?: string | null;
}

export interface ConversationSummary {
  id: string;
  title: string;
  model: string | null;
  created: string;
  updated: string;
}

export interface Conversation extends ConversationSummary {
  messages: StoredMessage[];
}

export interface ConversationPage {
  conversations: ConversationSummary[];
  next_cursor: string | null;
}

export interface Models {
  default: string;
  models: string[];
  /** a readable label per model ("SmolLM2 135M · local CPU"); older servers send none */
  labels?: Record<string, string>;
}

/** An event of the conversation feed (GET /api/conversations/events): a change to one
 *  of this owner's conversations, made by this page or any other. `created` and `turn`
 *  come once the turn is stored; `stream_id` is the new answer's stream. */
export interface ConversationChange {
  change: "created" | "turn" | "answered" | "renamed" | "deleted";
  conversation_id: string;
  title?: string;
  stream_id?: string;
}

// --- the events of /api/... streams (DESIGN.md, "Contract"); a reader skips others ---

export interface StartData {
  stream_id: string;
  conversation_id: string;
  message_id: string;
  model: string;
  /** the conversation's title as the server stores it (a new one's comes from its first
   *  message); servers from before issue 12 leave it out */
  title?: string;
}

export interface DoneData {
  finish_reason: "stop" | "length" | "cancelled" | "tool_calls" | string;
  usage?: Usage | null;
  timings?: Timings | null;
  length?: number;
  reasoning_length?: number;
  /** the calls, assembled (issue 13) */
  tool_calls?: ToolCall[];
}

/** A piece of tool call `index`: its first event carries `id` and `name`, the later
 *  ones the next piece of `arguments`; parallel calls interleave by index. */
export interface ToolCallData {
  index: number;
  id?: string;
  name?: string;
  arguments?: string;
}

export interface ErrorData extends MessageError {
  length?: number;
}

export type StreamEvent =
  | { type: "start"; id: number; data: StartData }
  | { type: "delta"; id: number; data: { text: string } }
  | { type: "reasoning"; id: number; data: { text: string } }
  | { type: "tool_call"; id: number; data: ToolCallData }
  | { type: "done"; id: number; data: DoneData }
  | { type: "error"; id: number; data: ErrorData };

/** An HTTP error answer (`{"error": {"code", "message"}}`) or a failed request. */
export class ApiError extends Error {
  constructor(
    /** HTTP status; 0 when the request never got an answer (network down) */
    readonly status: number,
    readonly code: string,
    message: string,
    /** seconds, from a 429's Retry-After header */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

/** A 401: the server needs an API key and this browser has none that it accepts (never
 *  signed in, key revoked, cookie expired). The page answers it with the sign-in form. */
export class Unauthorized extends ApiError {
  constructor(code: string, message: string) {
    super(401, code, message);
    this.name = "Unauthorized";
  }
}

/** What GET /api/session says: does the server need a key, does this browser have one. */
export interface SessionState {
  keys_required: boolean;
  signed_in: boolean;
}

type UnauthorizedListener = (error: Unauthorized) => void;
const unauthorizedListeners = new Set<UnauthorizedListener>();

/** Be told of every 401 any request of the page gets (JSON calls and streams alike),
 *  so one place can ask for the key again. Returns the function that stops it. */
export function onUnauthorized(listener: UnauthorizedListener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

/** Tell the listeners when `error` is a 401; returns it, for `throw reported(...)`. */
export function reported<E extends ApiError>(error: E): E {
  if (error instanceof Unauthorized) for (const listener of unauthorizedListeners) listener(error);
  return error;
}

/** Parse Retry-After: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === "") return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

/** Turn a non-2xx response into an ApiError, reading the JSON error body if any. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `The server answered ${response.status} ${response.statusText}`.trim();
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
    if (body?.error?.code) code = body.error.code;
    if (body?.error?.message) message = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) return new Unauthorized(code, message);
  return new ApiError(
    response.status,
    code,
    message,
    parseRetryAfter(response.headers.get("Retry-After")),
  );
}

export function networkError(cause: unknown): ApiError {
  const detail = cause instanceof Error && cause.message ? ` (${cause.message})` : "";
  return new ApiError(0, "network_error", `Could not reach the server${detail}.`);
}

/** `quiet`: a 401 is this call's own answer (a wrong key), not a lost session. */
async function request<T>(method: string, url: string, body?: unknown, quiet = false): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: body === undefined ? { Accept: "application/json" }
        : { Accept: "application/json", "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) {
    const error = await errorFromResponse(response);
    throw quiet ? error : reported(error);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

const enc = encodeURIComponent;

export const api = {
  /** Never a 401: whether this browser must sign in before anything else. */
  session: () => request<SessionState>("GET", "/api/session"),
  /** Resolves on 204; a wrong key rejects with Unauthorized (and no listener is told).
   *
   * The page never keeps the key (no localStorage, no variable after this call): the
   * server turns it into an HttpOnly, SameSite=Strict cookie that the browser sends with
   * every same-origin fetch and EventSource and that no script can read. A script that
   * got into the page (a sanitizer bypass in model output, an extension) could make
   * requests while the page is open, but could not carry the key away to use elsewhere
   * or later; localStorage would hand it over. */
  signIn: (key: string) => request<void>("POST", "/api/session", { key }, true),
  signOut: () => request<void>("DELETE", "/api/session", undefined, true),
  models: () => request<Models>("GET", "/api/models"),
  conversations: (cursor?: string | null, limit = 30) =>
    request<ConversationPage>(
      "GET",
      `/api/conversations?limit=${limit}${cursor ? `&cursor=${enc(cursor)}` : ""}`,
    ),
  conversation: (id: string) => request<Conversation>("GET", `/api/conversations/${enc(id)}`),
  rename: (id: string, title: string) =>
    request<Conversation>("PATCH", `/api/conversations/${enc(id)}`, { title }),
  remove: (id: string) => request<void>("DELETE", `/api/conversations/${enc(id)}`),
  cancel: (streamId: string) =>
    request<{ stream_id: string; cancelled: boolean }>(
      "POST",
      `/api/streams/${enc(streamId)}/cancel`,
    ),
};
