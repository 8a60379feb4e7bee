#!/usr/bin/env bash
# Take a large set of files to a GPU machine that has no network and accepts only a limited upload per call.
#
#   bash environment/gpu/carry.sh pack DEST PIECE_MB PATH...   # here: PATH... -> DEST/p1 ... DEST/pN
#   bash environment/gpu/carry.sh receive STAGE DIR...        # there, once per call: copy the pieces in DIR... to STAGE
#   bash environment/gpu/carry.sh unpack STAGE TARGET         # there, after the last piece: check and extract
#
# pack     makes one xz-compressed tar of PATH... (files or folders, stored under their own names), splits it
#          into pieces of at most PIECE_MB MiB and puts piece k into its own folder DEST/pk, with a manifest
#          (number of pieces, sha256 of the whole archive) beside it, so that each upload carries one folder.
# receive  copies whatever pieces and manifests it finds in DIR... into STAGE (keep STAGE on a path that
#          survives between uploads, e.g. /tmp/carry); safe to repeat.
# unpack   checks that all pieces are in STAGE and that the joined archive has the manifest's sha256, then
#          extracts it into TARGET. Exit status 1 with one sentence when a piece is missing or damaged.
set -euo pipefail

die() { echo "carry: $*" >&2; exit 1; }

case "${1:-}" in
  pack)
    [ $# -ge 4 ] || die "usage: carry.sh pack DEST PIECE_MB PATH..."
    dest=$2; mib=$3; shift 3
    [ -d "$dest" ] && [ -n "$(ls -A "$dest")" ] && die "$dest is not empty; give an empty or new folder"
    mkdir -p "$dest"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    args=()
    for p in "$@"; do
      [ -e "$p" ] || die "no such file or folder: $p"
      args+=(-C "$(cd "$(dirname "$p")" && pwd)" "$(basename "$p")")
    done
    tar -cf - "${args[@]}" | xz -T2 -6 > "$tmp/carry.tar.xz"
    sum=$(sha256sum "$tmp/carry.tar.xz" | cut -d' ' -f1)
    split -b "${mib}m" -d -a 2 "$tmp/carry.tar.xz" "$tmp/carry.tar.xz.part"
    n=$(ls "$tmp"/carry.tar.xz.part* | wc -l)
    k=0
    for part in "$tmp"/carry.tar.xz.part*; do
      k=$((k + 1))
      mkdir -p "$dest/p$k"
      mv "$part" "$dest/p$k/"
      printf 'pieces %s\nsha256 %s\n' "$n" "$sum" > "$dest/p$k/carry.manifest"
    done
    echo "carry: $(du -sh "$dest" | cut -f1) in $n pieces under $dest (sha256 $sum)"
    ;;
  receive)
    [ $# -ge 3 ] || die "usage: carry.sh receive STAGE DIR..."
    stage=$2; shift 2
    mkdir -p "$stage"
    found=0
    for d in "$@"; do
      for f in "$d"/carry.tar.xz.part* "$d"/carry.manifest; do
        [ -f "$f" ] || continue
        cp -f "$f" "$stage/"
        found=1
      done
    done
    echo "carry: $(ls "$stage"/carry.tar.xz.part* 2>/dev/null | wc -l) piece(s) staged in $stage"
    [ "$found" = 1 ] || die "no pieces found in $*"
    ;;
  unpack)
    [ $# -eq 3 ] || die "usage: carry.sh unpack STAGE TARGET"
    stage=$2; target=$3
    [ -f "$stage/carry.manifest" ] || die "no manifest in $stage: receive the pieces first"
    want=$(awk '$1 == "pieces" {print $2}' "$stage/carry.manifest")
    sum=$(awk '$1 == "sha256" {print $2}' "$stage/carry.manifest")
    have=$(ls "$stage"/carry.tar.xz.part* 2>/dev/null | wc -l)
    [ "$have" -eq "$want" ] || die "$have of $want pieces in $stage; upload the missing ones first"
    got=$(cat "$stage"/carry.tar.xz.part* | sha256sum | cut -d' ' -f1)
    [ "$got" = "$sum" ] || die "the joined pieces have sha256 $got, the manifest says $sum: a piece is damaged or from another pack"
    mkdir -p "$target"
    cat "$stage"/carry.tar.xz.part* | xz -d -T0 | tar -xf - -C "$target"
    echo "carry: unpacked $want piece(s) into $target"
    ;;
  *)
    sed -n '2,15p' "$0"
    exit 2
    ;;
esac
