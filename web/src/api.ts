/** The tokenrelay HTTP API: types of its JSON and the non-streaming calls. */

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

export interface StoredMessage {
  id: string;
  role: "system" | "user" | "assistant";
  content: string;
  status: MessageStatus;
  model: string | null;
  created: string;
  stream_id: string | null;
  reply_to: string | null;
  error: { code: string; message: string } | null;
  usage: Usage | null;
  timings: Timings | null;
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
}

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

async function request<T>(method: string, url: string, body?: unknown): Promise<T> {
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
  if (!response.ok) throw await errorFromResponse(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

const enc = encodeURIComponent;

export const api = {
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
