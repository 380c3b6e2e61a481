import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { ApiError, Unauthorized, api, errorFromResponse, onUnauthorized, parseRetryAfter } from "../src/api";
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
    expect(error).toBeInstanceOf(Unauthorized);
    expect(error.code).toBe("http_401");
    expect(describeError(error)).toMatch(/sign in again/);
  });

  it("shows time to first token, speed and token counts", () => {
    expect(formatStats({ input_tokens: 12, output_tokens: 231 }, { ttft_ms: 210.4, tokens_per_s: 48.25 }))
      .toBe("TTFT 210 ms · 48.3 tok/s · 231 tokens (12 in)");
    expect(formatStats(null, { ttft_ms: 1500 })).toBe("TTFT 1.50 s");
    expect(formatStats(null, null)).toBe("");
  });
});

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

const UNAUTHORIZED = { error: { code: "unauthorized", message: "An API key is required." } };

/** Stub the global fetch with these answers, in order; records what was asked. */
function serve(...responses: Response[]) {
  const calls: Array<{ url: string; method: string; body: unknown }> = [];
  vi.stubGlobal("fetch", vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    calls.push({ url: String(input), method: init?.method ?? "GET", body: init?.body ? JSON.parse(String(init.body)) : undefined });
    const next = responses.shift();
    if (!next) throw new Error(`unexpected request ${String(input)}`);
    return next;
  }));
  return calls;
}

describe("the session and 401s", () => {
  const told: Unauthorized[] = [];
  const stop = onUnauthorized((error) => told.push(error));
  afterEach(() => {
    told.length = 0;
    vi.unstubAllGlobals();
  });
  afterAll(stop);

  it("asks the server whether a key is needed and whether this browser has one", async () => {
    const calls = serve(json(200, { keys_required: true, signed_in: false }));
    expect(await api.session()).toEqual({ keys_required: true, signed_in: false });
    expect(calls).toEqual([{ url: "/api/session", method: "GET", body: undefined }]);
  });

  it("raises a typed Unauthorized for a 401 from any call, and tells the page", async () => {
    serve(json(401, UNAUTHORIZED, { "WWW-Authenticate": "Bearer" }));
    const error = await api.conversations().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Unauthorized);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 401, code: "unauthorized", message: "An API key is required." });
    expect(told).toEqual([error]);
  });

  it("does not tell the page of other errors", async () => {
    serve(json(404, { error: { code: "not_found", message: "No such conversation." } }));
    const error = await api.conversation("conv_x").catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(Unauthorized);
    expect(error).toMatchObject({ status: 404 });
    expect(told).toEqual([]);
  });

  it("signs in by posting the key once; the answer's cookie is the browser's business", async () => {
    const calls = serve(new Response(null, { status: 204 }));
    await expect(api.signIn("key-1")).resolves.toBeUndefined();
    expect(calls).toEqual([{ url: "/api/session", method: "POST", body: { key: "key-1" } }]);
  });

  it("rejects a wrong key with Unauthorized, without counting it as a lost session", async () => {
    serve(json(401, UNAUTHORIZED));
    await expect(api.signIn("wrong")).rejects.toBeInstanceOf(Unauthorized);
    expect(told).toEqual([]);
  });

  it("signs out with DELETE /api/session", async () => {
    const calls = serve(new Response(null, { status: 204 }));
    await api.signOut();
    expect(calls).toEqual([{ url: "/api/session", method: "DELETE", body: undefined }]);
  });

  it("never keeps the key in storage", async () => {
    serve(new Response(null, { status: 204 }));
    await api.signIn("secret-key-1");
    const stored = [localStorage, sessionStorage].flatMap((storage) =>
      Array.from({ length: storage.length }, (_, i) => storage.getItem(storage.key(i)!)));
    expect(stored.join(" ")).not.toContain("secret-key-1");
  });
});
