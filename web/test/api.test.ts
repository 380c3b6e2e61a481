import { describe, expect, it } from "vitest";
import { ApiError, errorFromResponse, parseRetryAfter } from "../src/api";
import { describeError, formatStats } from "../src/format";

describe("errors a person sees", () => {
  it("reads Retry-After as seconds or as an HTTP date", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("12", now)).toBe(12);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30);
    expect(parseRetryAfter("soon", now)).toBeNull();
    expect(parseRetryAfter(null, now)).toBeNull();
  });

  it("keeps the server's error code and message", async () => {
    const response = new Response(JSON.stringify({ error: { code: "rate_limited", message: "Too many." } }), {
      status: 429, headers: { "Retry-After": "5" },
    });
    const error = await errorFromResponse(response);
    expect(error).toMatchObject({ status: 429, code: "rate_limited", message: "Too many.", retryAfter: 5 });
    expect(describeError(error)).toBe("Rate limited: retry after 5 s.");
  });

  it("says what to do for a network failure and a 401", async () => {
    expect(describeError(new ApiError(0, "network_error", "x"))).toMatch(/Can't reach the server/);
    const error = await errorFromResponse(new Response("not json", { status: 401, statusText: "Unauthorized" }));
    expect(error.code).toBe("http_401");
    expect(describeError(error)).toMatch(/API key/);
  });

  it("shows time to first token, speed and token counts", () => {
    expect(formatStats({ input_tokens: 12, output_tokens: 231 }, { ttft_ms: 210.4, tokens_per_s: 48.25 }))
      .toBe("TTFT 210 ms · 48.3 tok/s · 231 tokens (12 in)");
    expect(formatStats(null, { ttft_ms: 1500 })).toBe("TTFT 1.50 s");
    expect(formatStats(null, null)).toBe("");
  });
});
