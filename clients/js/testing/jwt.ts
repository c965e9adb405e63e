/**
 * HS256 tokens signed by the test itself, for a server started in `jwt` auth mode with a
 * secret the test chose (e.g. to mint a token that expires within seconds: the server adds
 * its `auth.leeway_s` to `exp`, 30 s by default, so `exp` in the past by 28 s leaves about
 * 2 s; `jwtEnv(secret, {leewayS: 0})` makes `exp` exact).
 *
 * ```ts
 * const secret = testSecret();
 * const server = await startServer({env: jwtEnv(secret, {leewayS: 0})});
 * const token = signJwt(secret, {sub: "alice", exp: nowSeconds() + 3600});
 * ```
 */

import { createHmac, randomBytes } from "node:crypto";

/** A random secret long enough for the server (at least 32 bytes). */
export function testSecret(): string {
  return randomBytes(32).toString("hex");
}

/**
 * The environment that puts a server in jwt mode with `secret`; `leewayS` sets
 * `auth.leeway_s` (the server's default is 30).
 */
export function jwtEnv(secret: string, options: { leewayS?: number } = {}): Record<string, string> {
  const env: Record<string, string> = { LIBRARIAN__AUTH__MODE: "jwt", LIBRARIAN__AUTH__JWT_SECRET: secret };
  if (options.leewayS !== undefined) env.LIBRARIAN__AUTH__LEEWAY_S = String(options.leewayS);
  return env;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** An HS256 JWT with these claims (give at least `sub` and `exp`). */
export function signJwt(secret: string, claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  const signature = createHmac("sha256", secret).update(body).digest("base64url");
  return `${body}.${signature}`;
}
