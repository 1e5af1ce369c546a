import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ExportLinks } from "./ExportLinks";

describe("ExportLinks", () => {
  it("downloads the current search in its sort order, as CSV or vCard", () => {
    render(<ExportLinks params={{ search: "ada & co", sort: "-email" }} />);
    expect(screen.getByRole("link", { name: "Export CSV of the contacts found" })).toHaveAttribute(
      "href",
      "/api/contacts/export?format=csv&search=ada+%26+co&sort=-email",
    );
    expect(screen.getByRole("link", { name: "Export vCard of the contacts found" })).toHaveAttribute(
      "href",
      "/api/contacts/export?format=vcard&search=ada+%26+co&sort=-email",
    );
  });

  it("says it is the whole list when nothing is searched", () => {
    render(<ExportLinks params={{ search: "", sort: "last_name" }} />);
    expect(screen.getByRole("link", { name: "Export CSV of all contacts" })).toHaveAttribute(
      "href",
      "/api/contacts/export?format=csv&sort=last_name",
    );
  });
});
