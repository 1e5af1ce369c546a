import { render, screen } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { EditingNotice, PresenceInitials, initials } from "./Presence";

const ada = { id: 1, name: "Ada Lovelace", state: "viewing" as const };
const grace = { id: 2, name: "Grace Hopper", state: "editing" as const };
const linus = { id: 3, name: "Linus Torvalds", state: "editing" as const };

describe("presence", () => {
  it("shows initials of the first and last names, in any script", () => {
    expect(initials("Ada Lovelace")).toBe("AL");
    expect(initials("  grace  brewster hopper ")).toBe("GH");
    expect(initials("Cher")).toBe("C");
    expect(initials("李 小龙")).toBe("李小");
    expect(initials("𝒜da Ωmega")).toBe("𝒜Ω");
    expect(initials("")).toBe("?");
  });

  it("gives each person's full name and state as a tooltip and to screen readers", () => {
    render(<PresenceInitials users={[ada, grace]} />);
    expect(screen.getByTitle("Ada Lovelace is viewing")).toHaveTextContent("AL");
    expect(screen.getByTitle("Grace Hopper is editing")).toHaveAttribute("data-state", "editing");
    expect(screen.getByText("Grace Hopper is editing.")).toHaveClass("sr-only");
    expect(screen.getByText("GH")).toHaveAttribute("aria-hidden", "true");
  });

  it("shows nothing when nobody else is there", () => {
    const { container } = render(<PresenceInitials users={[]} />);
    expect(container).toBeEmptyDOMElement();
  });

  it("says who else is editing, in a live region, and nothing for those only viewing", () => {
    const { rerender } = render(<EditingNotice users={[ada]} />);
    expect(screen.getByRole("status")).toBeEmptyDOMElement();
    rerender(<EditingNotice users={[ada, grace]} />);
    expect(screen.getByRole("status")).toHaveTextContent("Grace Hopper is editing this contact.");
    rerender(<EditingNotice users={[grace, ada, linus]} />);
    expect(screen.getByRole("status")).toHaveTextContent("Grace Hopper and Linus Torvalds are editing this contact.");
  });
});
