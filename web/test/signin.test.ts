import { beforeEach, describe, expect, it, vi } from "vitest";
import { ApiError, Unauthorized } from "../src/api";
import { FIRST_VISIT, REJECTED, SESSION_ENDED, SignInForm } from "../src/ui/signin";

/** The form's markup, as in index.html. */
function mount() {
  document.body.innerHTML = `
    <dialog id="signin"><form id="signin-form" novalidate>
      <p id="signin-reason"></p>
      <label for="signin-key">API key</label>
      <input id="signin-key" type="password" />
      <p id="signin-error" role="alert" hidden></p>
      <button type="submit" id="signin-submit">Sign in</button>
    </form></dialog>`;
  const get = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
  return {
    dialog: get<HTMLDialogElement>("signin"),
    form: get<HTMLFormElement>("signin-form"),
    reason: get("signin-reason"),
    input: get<HTMLInputElement>("signin-key"),
    error: get("signin-error"),
    submit: get<HTMLButtonElement>("signin-submit"),
  };
}

function setUp(signIn: (key: string) => Promise<void>) {
  const parts = mount();
  const signedIn = vi.fn();
  const form = new SignInForm({ ...parts, signIn: vi.fn(signIn), signedIn });
  const submit = async (key: string) => {
    parts.input.value = key;
    parts.form.requestSubmit();
    await vi.waitFor(() => expect(parts.submit.disabled).toBe(false));
  };
  return { ...parts, form, signedIn, submit };
}

describe("the sign-in form", () => {
  beforeEach(() => {
    document.body.replaceChildren();
  });

  it("is a labelled password field, shown open with the reason", () => {
    const t = setUp(async () => undefined);
    expect(t.dialog.hasAttribute("open")).toBe(false);
    t.form.show();
    expect(t.dialog.hasAttribute("open")).toBe(true);
    expect(t.input.type).toBe("password");
    expect(t.input.labels?.[0]?.textContent).toBe("API key");
    expect(t.reason.textContent).toBe(FIRST_VISIT);
    expect(document.activeElement).toBe(t.input);
    expect(t.error.hidden).toBe(true);
  });

  it("says so when the key is not accepted, and stays open", async () => {
    const t = setUp(async () => { throw new Unauthorized("unauthorized", "Unknown key."); });
    t.form.show();
    await t.submit("wrong-key");
    expect(t.error.hidden).toBe(false);
    expect(t.error.textContent).toBe(REJECTED);
    expect(t.input.getAttribute("aria-invalid")).toBe("true");
    expect(t.dialog.hasAttribute("open")).toBe(true);
    expect(t.signedIn).not.toHaveBeenCalled();
    // Typing again clears the error.
    t.input.dispatchEvent(new Event("input"));
    expect(t.error.hidden).toBe(true);
    expect(t.input.hasAttribute("aria-invalid")).toBe(false);
  });

  it("tells a server failure apart from a wrong key", async () => {
    const t = setUp(async () => { throw new ApiError(0, "network_error", "offline"); });
    t.form.show();
    await t.submit("key-1");
    expect(t.error.textContent).toMatch(/Can't reach the server/);
  });

  it("asks for a key before sending an empty one", async () => {
    const signIn = vi.fn(async () => undefined);
    const t = setUp(signIn);
    t.form.show();
    await t.submit("   ");
    expect(t.error.textContent).toBe("Enter an API key.");
    expect(signIn).not.toHaveBeenCalled();
  });

  it("closes on an accepted key, forgets it, and lets the page go on", async () => {
    const keys: string[] = [];
    const t = setUp(async (key) => { keys.push(key); });
    t.form.show();
    await t.submit("  key-1 ");
    expect(keys).toEqual(["key-1"]);
    expect(t.dialog.hasAttribute("open")).toBe(false);
    expect(t.form.shown).toBe(false);
    expect(t.input.value).toBe("");
    expect(t.signedIn).toHaveBeenCalledOnce();
  });

  it("is not dismissed with Esc", () => {
    const t = setUp(async () => undefined);
    t.form.show();
    const cancel = new Event("cancel", { cancelable: true });
    t.dialog.dispatchEvent(cancel);
    expect(cancel.defaultPrevented).toBe(true);
    t.dialog.removeAttribute("open");
    t.dialog.dispatchEvent(new Event("close")); // Chromium closes on a second Esc
    expect(t.dialog.hasAttribute("open")).toBe(true);
  });

  it("keeps a key being typed when a second 401 arrives, and says why it is back", () => {
    const t = setUp(async () => undefined);
    t.form.show(SESSION_ENDED);
    t.input.value = "half-typ";
    t.form.show(SESSION_ENDED);
    expect(t.input.value).toBe("half-typ");
    expect(t.reason.textContent).toBe(SESSION_ENDED);
  });
});
