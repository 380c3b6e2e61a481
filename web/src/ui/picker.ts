/** The model picker (#model-select), and what the next answer asks for: the model
 *  picked (remembered in localStorage) and the provider options set for development. */

import { type Models, Unauthorized, api } from "../api";
import { describeFailure } from "../format";
import { h } from "./dom";

const MODEL_KEY = "tokenrelay.model";
/** Extra provider options sent with every answer, as JSON (developers, tests, benchmarks). */
const OPTIONS_KEY = "tokenrelay.options";

function stored(key: string): string | null {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage may be off
  }
}

export class ModelPicker {
  constructor(private readonly select: HTMLSelectElement,
              private readonly error: (message: string, retry: () => void) => void) {
    select.addEventListener("change", () => {
      try {
        localStorage.setItem(MODEL_KEY, select.value);
      } catch {
        // storage may be off; the choice still holds for this page
      }
    });
  }

  /** The model picked; undefined leaves the choice to the server. */
  get model(): string | undefined {
    return this.select.value || undefined;
  }

  /** Provider options from localStorage `tokenrelay.options` (README, "For end-to-end tests"). */
  get options(): Record<string, unknown> {
    try {
      const raw = stored(OPTIONS_KEY);
      const parsed: unknown = raw ? JSON.parse(raw) : {};
      return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
    } catch {
      return {};
    }
  }

  /** Pick `model` (a conversation's) when the server offers it. */
  choose(model: string | null): void {
    if (model && Array.from(this.select.options).some((o) => o.value === model)) this.select.value = model;
  }

  /** Fill the list from GET /api/models; keep the current pick, else the stored one, else the default. */
  async load(): Promise<void> {
    let models: Models;
    try {
      models = await api.models();
    } catch (error) {
      if (error instanceof Unauthorized) return; // loaded again after sign-in
      this.error(`Could not load the list of models. ${describeFailure(error)}`, () => void this.load());
      return;
    }
    const current = this.select.value;
    // The label is what a person reads ("SmolLM2 135M · local CPU"); the value stays the
    // model's name, which is what the API takes.
    const labels = models.labels ?? {};
    this.select.replaceChildren(
      ...models.models.map((name) => h("option", {
        text: labels[name] || name,
        attrs: { value: name, title: name === models.default ? `${name}, the server's default` : name },
      })),
    );
    const pick = [current, stored(MODEL_KEY), models.default].find((m) => m && models.models.includes(m));
    if (pick) this.select.value = pick;
  }
}
