#!/usr/bin/perl
# gen-data.pl MIB > FILE: test data for bench/run.sh.  Every 4 MiB: 1 MiB
# of zeros, 1 MiB of random bytes, 2 MiB of English-like text (random
# words from a fixed vocabulary, deterministic), so a quarter zeros, a
# quarter random and half text.  MIB must be a multiple of 4.
use strict;
use warnings;

my $mib = shift or die "usage: gen-data.pl MIB\n";
die "MIB must be a multiple of 4\n" if $mib % 4;
srand(42);
my @w = qw(the of and to in is that for it as was with be by on not he this
  are or his from at which but have an they you were her she there been one
  all we their has would when if so no will more out up who about into them
  some could him what than then its only other new these two may first any
  do like now my over such our man me even most made after also did many
  before must through back years where much your way well down should
  because each just those people how too little state good very make world
  still own see men work long get here between both life being under never
  day same another know while last might us great old year off come since
  against go came right used take three disk image cluster table write read
  block offset sector header backing copy);
my $text = '';
while (length($text) < (8 << 20)) {
    my $line = join(' ', map { $w[int(rand(@w))] } 1 .. (5 + int(rand(10))));
    $text .= ucfirst($line) . ".\n";
}
$text = substr($text, 0, 8 << 20);
open(my $ur, '<', '/dev/urandom') or die "/dev/urandom: $!\n";
binmode $ur;
binmode STDOUT;
my $zero = "\0" x (1 << 20);
my $toff = 0;
for (my $i = 0; $i < $mib; $i += 4) {
    print $zero;
    my $r;
    read($ur, $r, 1 << 20) == (1 << 20) or die "short read\n";
    print $r;
    print substr($text, $toff, 2 << 20);
    $toff = ($toff + (2 << 20)) % (8 << 20);
}
