import { useDeliveredTo, useLibrarySelector } from "@librarian/react";

/**
 * "On k of n" after a save: how many of the sessions open on the library hold the version this
 * client's latest write produced (delivery receipts, live as the others apply it).
 */
export function SaveReceipt() {
  const version = useLibrarySelector((s) => s.lastWriteVersion);
  const receipt = useDeliveredTo(version);
  if (version === null || !receipt || receipt.total === 0) return null;
  const all = receipt.held >= receipt.total;
  return (
    <span
      className={all ? "receipt all" : "receipt"}
      data-testid="receipt"
      data-held={receipt.held}
      data-total={receipt.total}
      title={`Your last save (library version ${version}) is held by ${receipt.held} of the ${receipt.total} sessions open on this library`}
    >
      Saved v{version} · on {receipt.held} of {receipt.total}
    </span>
  );
}
