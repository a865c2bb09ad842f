// Credentials: a fixed token, a `getToken` callback, or neither (the browser's cookie).
//
// getToken is called before a (re)connect when there is no valid token, on 401, on
// `auth:expired`, and `refreshMarginMs` before the token's `exp` (a JWT's claim, read
// without checking the signature: the server checks it). Returning "" (or null) means
// "no user": public streams only.

export class TokenManager {
  /**
   * @param {import("../types/tickwire").Env} env
   * @param {{token?: string|null, getToken?: (() => string|null|Promise<string|null>)|null, refreshMarginMs?: number}} options
   * @param {(token: string|null) => void} onRefreshed called when a scheduled refresh got a new token
   */
  constructor(env, { token = null, getToken = null, refreshMarginMs = 30000 }, onRefreshed = () => {}) {
    this.env = env;
    this.getToken = getToken;
    this.refreshMarginMs = refreshMarginMs;
    this.onRefreshed = onRefreshed;
    this.token = token || null;
    this.anonymous = false; // logged out: no user until login()
    this.timer = null;
    this.pending = null;
    this.schedule();
  }

  /** Whether credentials travel as a token (else the cookie, if any). */
  get usesToken() {
    return Boolean(this.token || this.getToken);
  }

  /** The user id of the current token (its `sub`), or null. */
  get user() {
    return claims(this.token)?.sub ?? null;
  }

  /** Whether `token` is present and not about to expire. */
  valid(token = this.token) {
    if (!token) return false;
    const exp = claims(token)?.exp;
    return typeof exp !== "number" || exp * 1000 - 5000 > this.env.now();
  }

  /** A valid token (asking getToken when there is none), or null for cookie / anonymous. */
  async ensure() {
    if (this.anonymous) return null;
    if (this.valid()) return this.token;
    if (!this.getToken) return this.token; // a fixed token, even expired: the server says 401
    return (await this.refresh()).token;
  }

  /** Ask getToken for a new token (one call at a time); whether it changed. */
  async refresh() {
    if (!this.getToken || this.anonymous) return { token: this.token, changed: false };
    if (!this.pending) {
      this.pending = (async () => {
        const before = this.token;
        try {
          this.token = (await this.getToken()) || null;
        } catch (err) {
          this.env.console?.warn("tickwire: getToken failed", err);
          throw err;
        } finally {
          this.pending = null;
        }
        this.schedule();
        return { token: this.token, changed: this.token !== before };
      })();
    }
    return this.pending;
  }

  /** A new token from getToken, or null (no getToken, logged out, or it failed). */
  async renewed() {
    if (!this.getToken || this.anonymous) return null;
    try {
      return (await this.refresh()).token;
    } catch {
      return null;
    }
  }

  /** Use `token` from now on (login); null clears it. */
  set(token) {
    this.token = token || null;
    this.anonymous = false;
    this.schedule();
  }

  /** No user until the next `set` / login. */
  logout() {
    this.token = null;
    this.anonymous = true;
    this.schedule();
  }

  /** Refresh shortly before `exp`, so open connections get the new token in time. */
  schedule() {
    this.env.clearTimeout(this.timer);
    this.timer = null;
    const exp = claims(this.token)?.exp;
    if (!this.getToken || typeof exp !== "number") return;
    const delay = Math.max(1000, exp * 1000 - this.refreshMarginMs - this.env.now());
    this.timer = this.env.setTimeout(async () => {
      this.timer = null;
      try {
        const { token, changed } = await this.refresh();
        if (changed) this.onRefreshed(token);
      } catch {
        this.timer = this.env.setTimeout(() => this.schedule(), 5000);
      }
    }, Math.min(delay, 2 ** 31 - 1));
  }

  close() {
    this.env.clearTimeout(this.timer);
    this.timer = null;
  }
}

/** The claims of a JWT (unverified), or null. */
export function claims(token) {
  if (typeof token !== "string") return null;
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const text = decodeURIComponent(
      Array.from(atob(b64), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}
