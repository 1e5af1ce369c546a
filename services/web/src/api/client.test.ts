import { afterEach, describe, expect, it, vi } from "vitest";

import { fakeApi, reply } from "../test-api";
import { api } from "./client";

const sent = (fetch: ReturnType<typeof fakeApi>, call: number) =>
  new Headers(fetch.mock.calls[call]![1]!.headers).get("Consistency-Token");

describe("Consistency-Token", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("sends back the newest write's token with every read, so a replica answers with that write", async () => {
    let token = "10";
    const contact = { id: 1, first_name: "A", last_name: "B", email: "a@b.c", phone: "+1 555 0100", version: 2 };
    const fetch = fakeApi({
      "GET /api/contacts/1": () => reply(200, contact),
      "PATCH /api/contacts/1": () => reply(200, contact, { "Consistency-Token": token }),
    });

    await api.get(1);
    expect(sent(fetch, 0)).toBeNull(); // no write yet: nothing to wait for

    await api.update(1, 1, { last_name: "B" });
    await api.get(1);
    expect(sent(fetch, 2)).toBe("10");

    token = "F"; // an older write's reply arriving late (a deferred create) does not move it back
    await api.update(1, 1, { last_name: "B" });
    await api.get(1);
    expect(sent(fetch, 4)).toBe("10");

    token = "not a position"; // nor does a value of another shape
    await api.update(1, 1, { last_name: "B" });
    await api.get(1);
    expect(sent(fetch, 6)).toBe("10");

    token = "1A"; // compared as numbers, not as text
    await api.update(1, 1, { last_name: "B" });
    await api.get(1);
    expect(sent(fetch, 8)).toBe("1A");
    expect(sent(fetch, 7)).toBeNull(); // writes do not send it
  });
});
