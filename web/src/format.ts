/** Words the page shows: answer statistics, statuses, error messages. */

import { ApiError, type MessageStatus, type Timings, type Usage } from "./api";

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** "TTFT 210 ms · 48.2 tok/s · 231 tokens" (parts the server did not measure are left out). */
export function formatStats(usage: Usage | null | undefined, timings: Timings | null | undefined): string {
  const parts: string[] = [];
  if (timings?.ttft_ms != null) parts.push(`TTFT ${formatDuration(timings.ttft_ms)}`);
  if (timings?.tokens_per_s != null) parts.push(`${timings.tokens_per_s.toFixed(1)} tok/s`);
  if (usage?.output_tokens != null) {
    const input = usage.input_tokens != null ? ` (${usage.input_tokens} in)` : "";
    parts.push(`${usage.output_tokens} tokens${input}`);
  }
  return parts.join(" · ");
}

export function statsTitle(usage: Usage | null | undefined, timings: Timings | null | undefined): string {
  const lines: string[] = [];
  if (timings?.ttft_ms != null) lines.push(`Time to first token: ${formatDuration(timings.ttft_ms)}`);
  if (timings?.tokens_per_s != null) lines.push(`Speed: ${timings.tokens_per_s.toFixed(1)} tokens/s`);
  if (timings?.total_ms != null) lines.push(`Total: ${formatDuration(timings.total_ms)}`);
  if (usage?.input_tokens != null) lines.push(`Input tokens: ${usage.input_tokens}`);
  if (usage?.output_tokens != null) lines.push(`Output tokens: ${usage.output_tokens}`);
  return lines.join("\n");
}

export const STATUS_LABEL: Record<MessageStatus, string> = {
  streaming: "Streaming",
  complete: "",
  cancelled: "Stopped",
  error: "Error",
  interrupted: "Interrupted",
};

/** What a failed request means for the person, and what they can do. */
export function describeError(error: ApiError): string {
  if (error.status === 0) {
    if (error.code === "stalled") return "The connection went silent. Retry to continue where it stopped.";
    return "Can't reach the server: check your network connection, then retry.";
  }
  if (error.status === 401) {
    return "The server no longer accepts this browser's API key (401): sign in again, then retry.";
  }
  if (error.status === 403) return `Not allowed (403): ${error.message}`;
  if (error.status === 429) {
    return error.retryAfter != null
      ? `Rate limited: retry after ${error.retryAfter} s.`
      : "Rate limited: wait a moment, then retry.";
  }
  if (error.status >= 500) return `The server failed (${error.status}): ${error.message}`;
  return error.message;
}

/** Anything a call threw, in words: an ApiError as describeError says it. */
export function describeFailure(error: unknown): string {
  return error instanceof ApiError ? describeError(error) : String(error);
}

/** An `error` event's code, in words. */
export function describeStreamError(code: string, message: string): string {
  const known: Record<string, string> = {
    upstream_auth: "The model provider refused the server's credentials.",
    upstream_rate_limited: "The model provider is rate limiting the server.",
    upstream_timeout: "The model provider did not answer in time.",
    upstream_disconnected: "The model provider dropped the connection.",
    upstream_server_error: "The model provider failed.",
    shutdown: "The server shut down while answering.",
  };
  const lead = known[code];
  return lead ? `${lead} (${message})` : message;
}

/** The Thinking block's label once the model stopped thinking: "Thought for 12 s", from
 *  its first to its last reasoning event as this page saw them; "Thought" when the page
 *  did not see them arrive (a stored answer, a replayed stream). */
export function formatThought(ms: number | null): string {
  if (ms === null) return "Thought";
  if (ms < 1000) return "Thought for less than a second";
  return `Thought for ${Math.round(ms / 1000)} s`;
}
