import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createQueryClient } from "../api/session";
import { fakeApi, grace, reply } from "../test-api";
import { HistoryPanel } from "./HistoryPanel";

const contact = grace;
const item = (version: number, source: string, actor: { id: number | null; name: string } | null) => ({
  version,
  op: version === 1 ? "created" : "updated",
  changed_fields: version === 1 ? [] : ["phone"],
  source,
  actor,
  at: "2026-01-01T00:00:00Z",
  event_id: `e${version}`,
  contact: { ...contact, version, phone: `+1 202 555 010${version}` },
});

describe("HistoryPanel", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("says who made each version: the person's name, else the source", async () => {
    fakeApi({
      "GET /api/contacts/7/history": () =>
        reply(200, {
          items: [item(3, "console", null), item(2, "api", { id: null, name: "crm-sync" }), item(1, "api", { id: 4, name: "Ada Lovelace" })],
          next_cursor: null,
        }),
    });
    render(
      <QueryClientProvider client={createQueryClient()}>
        <HistoryPanel id={7} />
      </QueryClientProvider>,
    );

    const versions = await screen.findAllByTestId("history-item");
    expect(versions.map((v) => v.querySelector("[data-testid=changed-by]")?.textContent)).toEqual([
      "by console",
      "by crm-sync",
      "by Ada Lovelace",
    ]);
  });
});
