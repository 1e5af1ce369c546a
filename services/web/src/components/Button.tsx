import type { ComponentProps } from "react";

const VARIANTS = {
  primary: "bg-blue-700 text-white hover:bg-blue-800 border-blue-700",
  danger: "bg-red-700 text-white hover:bg-red-800 border-red-700",
  plain: "bg-white text-slate-800 hover:bg-slate-100 border-slate-300",
};

export function Button({
  variant = "plain",
  className = "",
  ...props
}: ComponentProps<"button"> & { variant?: keyof typeof VARIANTS }) {
  return (
    <button
      type="button"
      {...props}
      className={`inline-flex min-h-10 items-center justify-center rounded-md border px-4 py-2 text-sm font-medium disabled:cursor-not-allowed disabled:opacity-60 ${VARIANTS[variant]} ${className}`}
    />
  );
}
