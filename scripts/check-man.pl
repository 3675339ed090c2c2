#!/usr/bin/perl
# The man pages (man/*.scd, scdoc) against the exported functions.
#
#   scripts/check-man.pl            check (make check-man, part of make test):
#     - every function exported by libdaxpmem.so.0 (symbols/daxpmem.syms) is named in
#       exactly one section-3 page, and every function a section-3 page names in NAME
#       or SYNOPSIS is exported;
#     - a page's NAME and SYNOPSIS name the same functions, and its file name is the
#       first of them;
#     - every prototype in a SYNOPSIS is the header's declaration (include/daxpmem.h),
#       up to white space;
#     - daxpmem-libpmem(7) lists every function of the libpmem drop-in
#       (compat/libpmem.syms) and no other, with compat/include/libpmem.h's prototypes;
#     - the Debian symbols file (debian/libdaxpmem0.symbols) lists the exported
#       functions exactly.
#   scripts/check-man.pl --links    "LINK TARGET" per line: man3 aliases (dax_unmap.3
#                                   dax_map.3) for make install and debian/.
# Plain perl (perl-base is essential in Debian): runs on a fresh machine.
use strict;
use warnings;

my $root = $0; $root =~ s{/scripts/[^/]+$}{}; $root = '.' if $root eq $0;
chdir $root or die "chdir $root: $!";

sub slurp { my ($f) = @_; open my $h, '<', $f or die "$f: $!"; local $/; my $t = <$h>; close $h; $t }
sub lines { my ($f) = @_; grep { length } map { s/\s+$//r } split /\n/, slurp($f) }
sub norm { my ($s) = @_; $s =~ s/\s+/ /g; $s =~ s/\s*([(),*])\s*/$1/g; $s =~ s/^ | $//g; $s }

# Declarations of a C header: comments and preprocessor lines dropped, one per ';'.
sub decls {
    my ($f) = @_;
    my $t = slurp($f);
    $t =~ s{/\*.*?\*/}{ }gs;
    $t =~ s{//[^\n]*}{}g;
    $t =~ s{^\s*#(?:[^\n]*\\\n)*[^\n]*}{}gm;
    my %d;
    for my $s (split /;/, $t) {
        my $n = norm($s);
        $n =~ s/^.*[{}]\s*//;                      # struct bodies, extern "C" {
        $d{$1} = $n if $n =~ /([A-Za-z_]\w*)\(/;
    }
    return \%d;
}

# NAME list and SYNOPSIS prototypes of one page.
sub page {
    my ($f) = @_;
    my (@name, %proto, $sec, $code);
    for my $l (split /\n/, slurp($f)) {
        if ($l =~ /^# (\S+)/) { $sec = $1; next }
        next unless defined $sec;
        if ($sec eq 'NAME' && $l =~ /^(.+?) - /) {
            @name = map { s/^\s+|\s+$//gr } split /,/, $1;
        }
        if ($sec eq 'SYNOPSIS') {
            if ($l =~ /^```/) { $code = !$code; next }
            if ($code && $l =~ /^[A-Za-z].*?([A-Za-z_]\w*)\(.*\);\s*$/) {
                my $fn = $1;
                $proto{$fn} = norm($l =~ s/;\s*$//r);
            }
        }
    }
    return (\@name, \%proto);
}

my @pages = sort glob('man/*.scd');
my @fail;
my (%page_of, @links);
my %syms = map { $_ => 1 } lines('symbols/daxpmem.syms');
my %csyms = map { $_ => 1 } lines('compat/libpmem.syms');
my $hdr = decls('include/daxpmem.h');
my $chdr = decls('compat/include/libpmem.h');

for my $p (@pages) {
    my ($base, $sect) = $p =~ m{man/(.+)\.(\d)\.scd$} or do { push @fail, "$p: not NAME.SECTION.scd"; next };
    my ($name, $proto) = page($p);
    push @fail, "$p: no NAME line 'a, b - what'" unless @$name;
    push @fail, "$p: file name is not the first NAME ($name->[0])" if @$name && $name->[0] ne $base;
    my %innames = map { $_ => 1 } @$name;
    if ($sect eq '3') {
        for my $n (@$name) {
            push @fail, "$p: $n is in NAME but not exported by libdaxpmem.so.0" unless $syms{$n};
            push @fail, "$p: $n is in NAME but has no prototype in SYNOPSIS" unless $proto->{$n};
            push @fail, "$p: $n is also named in $page_of{$n}" if $page_of{$n};
            $page_of{$n} = $p;
            push @links, "$n.3 $base.3" if $n ne $base;
        }
        for my $n (sort keys %$proto) {
            push @fail, "$p: $n has a SYNOPSIS prototype but is not in NAME" unless $innames{$n};
            push @fail, "$p: $n is in SYNOPSIS but not exported" unless $syms{$n};
            if (!$hdr->{$n}) { push @fail, "$p: $n is not declared in include/daxpmem.h" }
            elsif ($hdr->{$n} ne $proto->{$n}) {
                push @fail, "$p: SYNOPSIS of $n differs from include/daxpmem.h:\n    page:   $proto->{$n}\n    header: $hdr->{$n}";
            }
        }
    } elsif ($base eq 'daxpmem-libpmem') {
        for my $n (sort keys %$proto) {
            push @fail, "$p: $n is not exported by the libpmem drop-in" unless $csyms{$n};
            if (!$chdr->{$n}) { push @fail, "$p: $n is not declared in compat/include/libpmem.h" }
            elsif ($chdr->{$n} ne $proto->{$n}) {
                push @fail, "$p: SYNOPSIS of $n differs from compat/include/libpmem.h:\n    page:   $proto->{$n}\n    header: $chdr->{$n}";
            }
        }
        for my $n (sort keys %csyms) { push @fail, "$p: the drop-in's $n is not in SYNOPSIS" unless $proto->{$n} }
    } else {
        # Other sections name no C functions in NAME.
        for my $n (@$name) { push @fail, "$p: NAME $n is a function" if $syms{$n} || $csyms{$n} }
    }
}
for my $s (sort keys %syms) { push @fail, "$s: exported by libdaxpmem.so.0 but no section-3 page names it" unless $page_of{$s} }

# The Debian symbols file: the same exports.
if (-f 'debian/libdaxpmem0.symbols') {
    my %deb = map { /^\s+(\S+)\@Base\s/ ? ($1 => 1) : () } lines('debian/libdaxpmem0.symbols');
    for my $s (sort keys %syms) { push @fail, "debian/libdaxpmem0.symbols: $s missing" unless $deb{$s} }
    for my $s (sort keys %deb) { push @fail, "debian/libdaxpmem0.symbols: $s is not exported" unless $syms{$s} }
}

if (@ARGV && $ARGV[0] eq '--links') {
    die join("\n", @fail) . "\n" if @fail;
    print "$_\n" for @links;
    exit 0;
}
if (@fail) {
    print STDERR "check-man: $_\n" for @fail;
    printf STDERR "check-man: %d problem(s)\n", scalar @fail;
    exit 1;
}
printf "man pages: %d pages; %d exported functions each named by one section-3 page (%d aliases), prototypes as in the headers; %d libpmem drop-in functions in daxpmem-libpmem(7)\n",
    scalar @pages, scalar keys %syms, scalar @links, scalar keys %csyms;
