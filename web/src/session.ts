/**
 * The session: is this browser signed in. When the server needs an API key, nothing is
 * loaded before GET /api/session says this browser is signed in; any 401 later brings
 * the sign-in form back over the page as it is (issue 8, "Keys and isolation").
 */

import { api, onUnauthorized } from "./api";
import { describeFailure } from "./format";
import type { Announcer } from "./ui/announcer";
import type { BannerSlot } from "./ui/banner";
import { SESSION_ENDED, SignInForm, type SignInParts } from "./ui/signin";

export interface SessionParts {
  /** the sign-in dialog's elements */
  signIn: Omit<SignInParts, "signIn" | "signedIn">;
  /** the Sign out button's place: shown when the server needs a key */
  account: HTMLElement;
  banner: BannerSlot;
  announcer: Announcer;
}

export interface SessionHooks {
  /** signed in, or no key needed: load the page (`again`: it was loaded before, maybe
   *  for another key, so load what is per key afresh) */
  ready(again: boolean): void;
  /** signed out: nothing of the key's may stay on screen */
  signedOut(): void;
}

export class Session {
  private readonly form: SignInForm;
  /** the page was loaded once (signed in, or no key needed) */
  private loaded = false;

  constructor(private readonly parts: SessionParts, private readonly hooks: SessionHooks) {
    this.form = new SignInForm({ ...parts.signIn, signIn: (key) => api.signIn(key), signedIn: () => this.signedIn() });
  }

  start(): void {
    onUnauthorized(() => this.ended());
    void this.check();
  }

  async signOut(): Promise<void> {
    try {
      await api.signOut();
    } catch (error) {
      this.parts.banner.show(`Could not sign out. ${describeFailure(error)}`, () => void this.signOut());
      return;
    }
    this.hooks.signedOut();
    this.form.show();
  }

  private async check(): Promise<void> {
    let keysRequired: boolean;
    let signedIn: boolean;
    try {
      ({ keys_required: keysRequired, signed_in: signedIn } = await api.session());
    } catch (error) {
      this.parts.banner.show(`Could not reach the server. ${describeFailure(error)}`, () => void this.check());
      return;
    }
    this.parts.account.hidden = !keysRequired;
    if (keysRequired && !signedIn) {
      this.form.show();
    } else {
      this.ready();
    }
  }

  private ready(): void {
    const again = this.loaded;
    this.loaded = true;
    this.hooks.ready(again);
  }

  /** A 401 from any request: the key was revoked or the cookie expired. The form goes
   *  over the page as it is, so the message box and the answers on screen stay. */
  private ended(): void {
    this.parts.account.hidden = false;
    this.parts.banner.clear();
    this.form.show(this.loaded ? SESSION_ENDED : undefined);
  }

  private signedIn(): void {
    this.parts.account.hidden = false;
    this.parts.announcer.say("Signed in");
    this.ready();
  }
}
