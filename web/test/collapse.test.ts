import { describe, expect, it } from "vitest";
import { COLLAPSE_AT } from "../src/ui/collapse";
import { AnswerView, userMessageView } from "../src/ui/messages";

const LONG = "line of a long paste\n".repeat(5000); // 105,000 characters

describe("a long message (issue 14)", () => {
  it("shows a user message collapsed, the whole text only on Show more, folded again on Show less", () => {
    const view = userMessageView(LONG);
    const bubble = view.querySelector(".bubble")!;
    const toggle = view.querySelector<HTMLButtonElement>("[data-testid=show-more]")!;
    expect(toggle.textContent).toBe("Show more");
    expect(toggle.getAttribute("aria-expanded")).toBe("false");
    expect(bubble.textContent!.length).toBeLessThan(2000);
    expect(LONG.startsWith(bubble.textContent!.replace(/…$/, ""))).toBe(true);
    toggle.click();
    expect(bubble.textContent).toBe(LONG);
    expect(toggle.textContent).toBe("Show less");
    expect(toggle.getAttribute("aria-expanded")).toBe("true");
    toggle.click();
    expect(bubble.textContent!.length).toBeLessThan(2000);
  });

  it("leaves a message under the limit as it is", () => {
    const view = userMessageView("x".repeat(COLLAPSE_AT));
    expect(view.querySelector("[data-testid=show-more]")).toBeNull();
    expect(view.textContent).toBe("x".repeat(COLLAPSE_AT));
  });

  it("renders only the beginning of a long stored answer until Show more", () => {
    const view = new AnswerView([{
      id: "m1", status: "complete", content: LONG, model: "scripted", usage: null, timings: null, error: null,
      streamId: null, reasoning: "", thought: null, toolCalls: [],
    }], { regenerate: () => undefined, copied: () => undefined });
    const content = view.element.querySelector("[data-testid=answer-content]")!;
    const toggle = view.element.querySelector<HTMLButtonElement>("[data-testid=show-more]")!;
    expect(content.textContent!.length).toBeLessThan(2000);
    expect(content.classList.contains("collapsed")).toBe(true);
    toggle.click();
    expect(content.textContent!.match(/line of a long paste/g)).toHaveLength(5000);
    expect(toggle.textContent).toBe("Show less");
    toggle.click();
    expect(content.textContent!.length).toBeLessThan(2000);
  });
});
