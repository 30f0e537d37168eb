#!/usr/bin/env bash
# Rewrites citations of the team's private design documents into citations of the project's
# own notes, which keep the same section numbers:
#   kvs-spec.md §6.3 / kvs-spec §6.3 / ../shared/docs/kvs-spec.md  ->  docs/protocol.md §6.3
#   architecture.md §2 / shared/docs/architecture.md               ->  docs/design.md §2
# Idempotent: a second run changes nothing. Only files that contain an old citation are touched.
#
# usage: scripts/fix-citations.sh [PATH...]          rewrite (default: crates tests scripts docs README.md)
#        scripts/fix-citations.sh --check [PATH...]  exit 1, listing each old citation left and each
#                                                    cited § (or quoted §2 "Name") missing from the docs
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

check=0
if [[ "${1:-}" == "--check" ]]; then
    check=1
    shift
fi
if [[ $# -eq 0 ]]; then
    set -- crates tests scripts docs README.md
fi

self=fix-citations.sh
excludes=(--exclude="$self" --exclude-dir=target --exclude-dir=.git --exclude-dir=node_modules
          --exclude-dir=__pycache__ --exclude-dir=.venv)
old='kvs-spec|architecture\.md|shared/docs'

# Files (text only) under the given paths that still cite the old documents.
files_with_old() {
    grep -rlIE "${excludes[@]}" "$old" -- "$@" 2>/dev/null || true
}

if [[ $check -eq 0 ]]; then
    # A character that cannot be part of a path or a longer name, so "foo-architecture.md" is left alone.
    pre='(^|[^[:alnum:]_./-])'
    # An optional path to the old file: any/shared/docs/, ../shared/docs/, or docs/.
    path="([^[:space:]\"'\`()]*shared/docs/|docs/)?"
    program="
s#${pre}${path}kvs-spec\\.md#\\1docs/protocol.md#g
s#${pre}kvs-spec([^[:alnum:]_.-]|\$)#\\1docs/protocol.md\\2#g
s#${pre}${path}architecture\\.md#\\1docs/design.md#g
"
    changed=0
    while IFS= read -r f; do
        [[ -n "$f" ]] || continue
        tmp=$(mktemp)
        sed -E "$program" "$f" >"$tmp"
        if ! cmp -s "$tmp" "$f"; then
            cat "$tmp" >"$f" # in place: keeps the file's mode
            echo "rewrote $f"
            changed=$((changed + 1))
        fi
        rm -f "$tmp"
    done < <(files_with_old "$@")
    echo "$changed file(s) rewritten"
    exit 0
fi

# --check
for d in docs/protocol.md docs/design.md; do
    [[ -f "$d" ]] || { echo "missing $d"; exit 1; }
done
mapfile -t files < <(grep -rlIE "${excludes[@]}" 'kvs-spec|architecture\.md|shared/docs|docs/(protocol|design)\.md' -- "$@" 2>/dev/null || true)
if [[ ${#files[@]} -eq 0 ]]; then
    echo "no citations under: $*"
    exit 0
fi
perl -e '
    use strict; use warnings;
    # Numbered headings ("## 6. Signaling", "### 6.3 Relay rules") and all heading texts of each doc.
    my (%sec, %head);
    for my $doc ("docs/protocol.md", "docs/design.md") {
        open(my $fh, "<", $doc) or die "$doc: $!";
        while (<$fh>) {
            next unless /^#+\s+(.*?)\s*$/;
            my $h = $1;
            $sec{$doc}{$1} = 1 if $h =~ /^(\d+(?:\.\d+)*)\.?(?:\s|$)/;
            push @{$head{$doc}}, lc $h;
        }
    }
    my $bad = 0;
    for my $f (@ARGV) {
        open(my $fh, "<", $f) or die "$f: $!";
        while (my $line = <$fh>) {
            chomp $line;
            if ($line =~ /kvs-spec|(?<![\w-])architecture\.md|shared\/docs/) {
                print "$f:$.: old citation: $line\n"; $bad++;
            }
            # After each citation of a doc, the §s up to the next ; ) or doc belong to that doc.
            while ($line =~ /docs\/(protocol|design)\.md((?:(?!docs\/(?:protocol|design)\.md)[^;)])*)/g) {
                my ($doc, $tail) = ("docs/$1.md", $2);
                $tail =~ s/\bRFC\b.*//;
                while ($tail =~ /§(\d+(?:\.\d+)*)(?:\s+["\x27]([^"\x27]+)["\x27])?/g) {
                    my ($n, $name) = ($1, $2);
                    if (!$sec{$doc}{$n}) {
                        print "$f:$.: $doc has no section $n\n"; $bad++;
                    } elsif (defined $name && !grep { index($_, lc $name) >= 0 } @{$head{$doc}}) {
                        print "$f:$.: $doc has no heading \"$name\" (cited under §$n)\n"; $bad++;
                    }
                }
            }
        }
    }
    if ($bad) { print "$bad unresolved citation(s)\n"; exit 1 }
    print "all citations resolve (" . scalar(@ARGV) . " files)\n";
' "${files[@]}"
