# bash completion for qcowkit: subcommands, then each one's options, then
# file names.  Installed as bash-completion's completions/qcowkit.

_qcowkit_options()
{
    local common="-h --help --object --image-opts"
    case $1 in
    create) echo "$common -q -f -b -F -u -o" ;;
    info) echo "$common -f --output= --backing-chain -U --force-share" ;;
    convert) echo "$common -c -p -q -n -f -t -T -O -B -F -o -S -m -W -U" ;;
    compare) echo "$common -f -F -T -p -q -s -U --force-share" ;;
    map) echo "$common -f --output= --start-offset= --max-length= -U" ;;
    check) echo "$common -f --output= -r --repair -T -q -U --force-share" ;;
    commit) echo "$common -q -f -t -b -d -p -r" ;;
    rebase) echo "$common -q -f -t -T -p -u -c -b -F" ;;
    resize) echo "$common -q -f --shrink" ;;
    snapshot) echo "$common -q -U --force-share -l -a -c -d" ;;
    measure) echo "$common --output= -O -o --size -f" ;;
    dd) echo "$common -f -O -U bs= count= skip= if= of=" ;;
    bench) echo "$common -c -d -f --flush-interval= -n --no-drain -o" \
        "--pattern= -q -s -S -t -w -U" ;;
    io) echo "$common -f -r -s --snapshot -U -c --cmd -C --copy-on-read" \
        "-n --nocache -m -V --version" ;;
    nbd) echo "$common -f -r -x -k -p -b -e -t --pid-file= -D -U -v" \
        "--handshake-limit= --max-memory=" ;;
    mount) echo "$common -f -r -U -o --foreground -F --pid-file=" ;;
    esac
}

_qcowkit()
{
    local cur prev cmd
    local commands="create info convert compare map check commit rebase
        resize snapshot measure dd bench io nbd mount help"
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}

    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$commands --version --help" -- "$cur"))
        return
    fi
    cmd=${COMP_WORDS[1]}
    case $prev in
    -f | -F | -O)
        COMPREPLY=($(compgen -W "qcow raw" -- "$cur"))
        return
        ;;
    --output)
        COMPREPLY=($(compgen -W "human json" -- "$cur"))
        return
        ;;
    esac
    case $cmd in
    help)
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        return
        ;;
    check)
        if [ "$prev" = -r ] || [ "$prev" = --repair ]; then
            COMPREPLY=($(compgen -W "leaks all" -- "$cur"))
            return
        fi
        ;;
    esac
    case $cur in
    --output=*)
        COMPREPLY=($(compgen -W "human json" -- "${cur#--output=}"))
        return
        ;;
    -*)
        COMPREPLY=($(compgen -W "$(_qcowkit_options "$cmd")" -- "$cur"))
        [ "${COMPREPLY[0]}" != "${COMPREPLY[0]%=}" ] &&
            compopt -o nospace 2>/dev/null
        return
        ;;
    esac
    COMPREPLY=($(compgen -f -- "$cur"))
    compopt -o filenames 2>/dev/null
}

complete -F _qcowkit qcowkit
