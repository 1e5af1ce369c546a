import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FakeSocket } from "../live/FakeSocket";
import { fakeApi, reply } from "../test-api";
import { ImportContacts, mediaTypeOf } from "./ImportContacts";

const job = { id: "4b1c", status: "running", rows: 0, created: 0, rejected: 0, errors: [] };

function choose(file: File) {
  fireEvent.change(screen.getByLabelText("Import contacts (CSV or vCard)"), { target: { files: [file] } });
}

describe("ImportContacts", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    FakeSocket.all = [];
  });

  it("uploads the file as its type, follows the pushed progress, then lists the rejected rows", async () => {
    let ended = false;
    const fetch = fakeApi({
      "POST /api/imports": () => reply(202, job, { Location: "/api/imports/4b1c" }),
      "GET /api/imports/4b1c": () =>
        reply(
          200,
          ended
            ? { ...job, status: "done", rows: 3, created: 2, rejected: 1, errors: [{ line: 3, field: "email", message: "already in use" }] }
            : job,
        ),
    });
    render(<ImportContacts connect={(url) => new FakeSocket(url)} />);
    choose(new File(["first_name\nAda\n"], "people.csv", { type: "" }));

    await waitFor(() => expect(FakeSocket.all).toHaveLength(1));
    const [, init] = fetch.mock.calls[0]!;
    expect(new Headers(init?.headers).get("Content-Type")).toBe("text/csv");
    const socket = FakeSocket.all[0]!;
    socket.accept("e", 0);
    socket.receive({ type: "contact.created", seq: 1 });
    socket.receive({ type: "import", id: "4b1c", status: "running", rows: 3, created: 1, rejected: 1 });
    expect(await screen.findByText(/Importing: 2 of 3 rows — 1 imported, 1 rejected/)).toBeInTheDocument();
    expect(screen.getByRole("progressbar", { name: "Import progress" })).toHaveAttribute("max", "3");

    ended = true;
    socket.receive({ type: "import", id: "4b1c", status: "done", rows: 3, created: 2, rejected: 1 });
    expect(await screen.findByText(/Import done: 3 rows — 2 imported, 1 rejected/)).toBeInTheDocument();
    const table = screen.getByRole("table", { name: "Rejected rows" });
    expect(table).toHaveTextContent("3emailalready in use");
    await waitFor(() => expect(socket.closed).toBe(true));
  });

  it("says why a file was refused", async () => {
    fakeApi({
      "POST /api/imports": () => reply(422, { title: "Unreadable file", status: 422, detail: "the file is not UTF-8 text" }),
    });
    render(<ImportContacts connect={(url) => new FakeSocket(url)} />);
    choose(new File([new Uint8Array([0xff, 0xfe])], "people.csv"));
    expect(await screen.findByRole("alert")).toHaveTextContent("Could not import");
    expect(FakeSocket.all).toHaveLength(0);
  });

  it("reads .vcf files as vCard", () => {
    expect(mediaTypeOf(new File([""], "card.VCF"))).toBe("text/vcard");
    expect(mediaTypeOf(new File([""], "x", { type: "text/x-vcard" }))).toBe("text/vcard");
    expect(mediaTypeOf(new File([""], "people.csv", { type: "text/csv" }))).toBe("text/csv");
  });
});
