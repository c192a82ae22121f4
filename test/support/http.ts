// Fetching from a server under test over real HTTP: a 200 is asserted, with the start of the
// body in the message when it is not one.

import { expect } from 'vitest';

export async function fetchOk(url: string, init?: RequestInit): Promise<Response> {
  const res = await fetch(url, init);
  if (res.status !== 200) expect(res.status, `${url}: ${(await res.text()).slice(0, 200)}`).toBe(200);
  return res;
}

export async function fetchBytes(url: string, init?: RequestInit): Promise<Buffer> {
  return Buffer.from(await (await fetchOk(url, init)).arrayBuffer());
}
