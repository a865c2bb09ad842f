// Requests to the server's JSON API (alerts, rules): the client's credentials, the rules of
// state-changing requests (JSON only: 415 otherwise; the cookie only from this origin: the
// browser's `Origin` does that), and errors that carry the server's status and message.

/** A refused or failed API request: `status` (0 without an answer) and the server's message. */
export class TickwireApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.name = "TickwireApiError";
    this.status = status;
    this.body = body;
  }
}

/**
 * `method path` with an optional JSON body; the parsed answer (null for 204). With a token
 * (or getToken) it travels as `Authorization: Bearer`; on 401 getToken is asked once more
 * and the request repeated. Without one the session cookie goes (`credentials`).
 * @param {import("./client.js").TickwireClient} client
 */
export async function apiRequest(client, method, path, body) {
  const { auth, env, options } = client;
  if (typeof env.fetch !== "function") throw new TickwireApiError(0, "tickwire: no fetch in this environment");
  const send = async (token) => {
    const headers = { Accept: "application/json" };
    // Every state-changing request declares JSON, with or without a body.
    if (method !== "GET") headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      return await env.fetch(options.baseUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: options.credentials,
        cache: "no-store",
      });
    } catch (err) {
      throw new TickwireApiError(0, `network error: ${err?.message ?? err}`);
    }
  };
  let response = await send(auth.usesToken ? await auth.ensure() : null);
  if (response.status === 401 && auth.getToken) {
    const fresh = await auth.renewed();
    if (fresh) response = await send(fresh);
  }
  if (response.status === 204) return null;
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (response.status >= 200 && response.status < 300) return answer;
  const message = answer && typeof answer.message === "string" ? answer.message : `HTTP ${response.status}`;
  throw new TickwireApiError(response.status, message, answer);
}

/** `/api/alerts...` with a path segment escaped. */
export const alertsPath = (...parts) => ["/api/alerts", ...parts.map((p) => encodeURIComponent(p))].join("/");
