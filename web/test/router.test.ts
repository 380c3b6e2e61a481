import { describe, expect, it } from "vitest";
import { conversationOf, conversationPath } from "../src/router";

describe("the router's addresses", () => {
  it("reads a conversation's id back from its path, however the id is spelled", () => {
    for (const id of ["conv_0123abcd", "a b/c?d#e", "é"]) expect(conversationOf(conversationPath(id))).toBe(id);
    expect(conversationOf("/c/conv_1/")).toBe("conv_1");
  });

  it("takes any other path for a new chat", () => {
    for (const path of ["/", "/c/", "/c/a/b", "/docs", ""]) expect(conversationOf(path)).toBeNull();
  });
});
