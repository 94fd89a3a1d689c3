/*  snn/dialogue_gen.c - the dialogue model's data: requests for the
    agent's domain generated from templates (greetings, arithmetic and
    comparisons on spoken numbers, the time, timers, counting, yes/no
    questions about the agent, help, jokes, short stories, and requests it
    cannot serve), written as the transcripts the model must produce (tool
    calls and results included); the real dialogues of chatterbot-corpus
    turned into the same format; the held-out phrasings and the checker
    that says whether a reply is right.

    The split: in every template list (and in the lists of prefixes,
    suffixes and question wrappers) every fourth entry is held out. The
    training corpus is built only from the others; the held-out requests
    use at least one held-out template (and their prefixes, suffixes and
    wrappers only from the held-out lists or none), so no held-out request
    is a sentence the training corpus contains (tests/test_lm_train.c
    checks it on the whole corpus). Numbers, times and durations are drawn
    at random for both.

    Workload: tens of thousands of dialogues generated in well under a
    second; nothing here touches the model.
*/
#include "dialogue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELD(i) ((i) % 4 == 3)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- what the agent says --------------------------------------------------------- */

static const char HELP[] = "i can tell you the time, set a timer, do arithmetic, compare numbers, "
                           "count, and tell jokes and short stories.";
static const char SORRY[] = "sorry, i can't help with that. i can tell the time, set timers, do "
                            "arithmetic, count, and tell jokes or stories.";

static const char *const JOKES[] = {
    "why don't skeletons fight each other? they don't have the guts.",
    "what do you call a bear with no teeth? a gummy bear.",
    "why did the bicycle fall over? because it was two tired.",
    "what do you call a sleeping dinosaur? a dino snore.",
    "why can't you trust an atom? because they make up everything.",
    "what did the ocean say to the beach? nothing, it just waved.",
    "why was the math book sad? it had too many problems.",
    "what do you call cheese that isn't yours? nacho cheese.",
    "why did the scarecrow win an award? because he was outstanding in his field.",
    "what do you call a fish wearing a bowtie? sofishticated.",
};

typedef struct {
    const char *topics[3]; /* how a user names it */
    const char *text;
} story;

static const story STORIES[] = {
    {{"a robot", "robots", "a little robot"},
     "once upon a time, a little robot named bolt lived in a quiet workshop. every night it "
     "tidied the tools and dreamed of the stars. one evening it built a tiny rocket from spare "
     "parts, flew up to the roof, and watched the moon rise. bolt never reached the stars, but "
     "it learned that dreaming was the best part. the end."},
    {{"a dragon", "dragons", "a little dragon"},
     "once upon a time, a small dragon could not breathe fire, only bubbles. the other dragons "
     "laughed at her. one hot summer the village well dried up and the crops began to wilt. the "
     "little dragon blew a great cloud of bubbles that burst into rain over the fields. from "
     "then on, everyone called her the rain dragon. the end."},
    {{"a cat", "cats", "a kitten"},
     "once upon a time, a curious cat named pepper found a door at the bottom of the garden. "
     "behind it was a room full of yarn in every color. pepper played until the sun went down, "
     "then curled up in the softest ball and purred herself to sleep. the next morning the door "
     "was gone, but pepper kept one red thread. the end."},
    {{"a boat", "boats", "a paper boat"},
     "once upon a time, a little paper boat sailed down a rainy street. it bumped past leaves "
     "and bottle caps and raced a beetle on a twig. at the end of the street it reached a big "
     "puddle that looked like an ocean. the boat bobbed happily in the middle and watched the "
     "clouds go by until the sun came out. the end."},
    {{"a star", "the stars", "a little star"},
     "once upon a time, a young star was afraid of the dark between the planets. each night she "
     "shone a little brighter so that travelers would not get lost. one night a lost comet "
     "followed her light all the way home. the star learned that her fear had made her the "
     "brightest light in the sky. the end."},
    {{"a dog", "dogs", "a puppy"},
     "once upon a time, a puppy named max lost his favorite ball in the park. he asked the "
     "squirrel, the duck and the old oak tree, but nobody had seen it. as the sun set, max found "
     "the ball under a bench, right where he had left it. he carried it home proudly and slept "
     "with it between his paws. the end."},
};

/* ---- what the user says ----------------------------------------------------------- */

static const char *const T_PLUS[] = {
    "what is {a} plus {b}",
    "what's {a} plus {b}",
    "{a} plus {b}",
    "can you add {a} and {b}",
    "how much is {a} plus {b}",
    "what do you get when you add {a} and {b}",
    "calculate {a} plus {b}",
    "what is the sum of {a} and {b}",
    "add {a} to {b}",
    "{a} and {b} added together",
    "what does {a} plus {b} make",
    "what's {a} added to {b}",
    "the sum of {a} and {b}",
    "if i add {a} and {b} what do i get",
    "add {a} and {b}",
    "what is {a} and {b} added together",
    "{a} plus {b} equals what",
    "work out {a} plus {b}",
    "figure out {a} plus {b}",
    "what's the sum of {a} and {b}",
    "i need {a} plus {b}",
    "add up {a} and {b}",
    "compute {a} plus {b}",
    "how much do {a} and {b} make when added"};
static const char *const T_MINUS[] = {
    "what is {a} minus {b}",
    "what's {a} minus {b}",
    "{a} minus {b}",
    "what do you get if you subtract {b} from {a}",
    "how much is {a} minus {b}",
    "what do you get when you subtract {b} from {a}",
    "calculate {a} minus {b}",
    "what is {a} take away {b}",
    "take {b} away from {a}",
    "{a} take away {b}",
    "what does {a} minus {b} make",
    "how much is {a} take away {b}",
    "can you subtract {b} from {a}",
    "what's left when you take {b} from {a}",
    "subtract {b} from {a}",
    "if i subtract {b} from {a} what's left",
    "{a} minus {b} equals what",
    "work out {a} minus {b}",
    "figure out {a} minus {b}",
    "what's {a} take away {b}",
    "i need {a} minus {b}",
    "take away {b} from {a}",
    "compute {a} minus {b}",
    "can you work out {a} minus {b}"};
static const char *const T_TIMES[] = {
    "what is {a} times {b}",
    "what's {a} times {b}",
    "{a} times {b}",
    "can you multiply {a} and {b}",
    "how much is {a} times {b}",
    "what do you get when you multiply {a} by {b}",
    "calculate {a} times {b}",
    "what is {a} multiplied by {b}",
    "multiply {a} and {b}",
    "{a} multiplied by {b}",
    "what's the product of {a} and {b}",
    "what does {a} times {b} make",
    "can you multiply {a} by {b}",
    "what are {a} times {b}",
    "multiply {a} by {b}",
    "if i multiply {a} by {b} what do i get",
    "{a} times {b} equals what",
    "work out {a} times {b}",
    "figure out {a} times {b}",
    "how much is {a} multiplied by {b}",
    "i need {a} times {b}",
    "times {a} by {b}",
    "compute {a} times {b}",
    "what's {a} multiplied by {b}"};
static const char *const T_DIV[] = {
    "what is {a} divided by {b}",
    "what's {a} divided by {b}",
    "{a} divided by {b}",
    "can you divide {a} by {b}",
    "how much is {a} divided by {b}",
    "what do you get when you divide {a} by {b}",
    "calculate {a} divided by {b}",
    "what is {a} over {b}",
    "divide {a} by {b}",
    "{a} over {b}",
    "how many times does {b} go into {a}",
    "what does {a} divided by {b} make",
    "what's {a} shared between {b}",
    "what's {a} split {b} ways",
    "if i divide {a} by {b} what do i get",
    "what's {a} over {b}",
    "{a} divided by {b} equals what",
    "work out {a} divided by {b}",
    "figure out {a} divided by {b}",
    "how much is {a} over {b}",
    "i need {a} divided by {b}",
    "split {a} into {b}",
    "compute {a} divided by {b}",
    "what do i get if i divide {a} by {b}"};
static const char *const T_GREATER[] = {
    "is {a} greater than {b}",
    "is {a} bigger than {b}",
    "is {a} more than {b}",
    "tell me if {a} is bigger than {b}",
    "is {a} larger than {b}",
    "is {a} higher than {b}",
    "is {a} above {b}",
    "is {a} a larger number than {b}",
    "tell me if {a} is greater than {b}",
    "is it true that {a} is more than {b}",
    "is {a} a bigger number than {b}",
    "is it true that {a} is bigger than {b}",
    "{a} is bigger than {b} right",
    "check if {a} is greater than {b}",
    "is the number {a} more than {b}",
    "check if {a} is larger than {b}",
    "is {a} greater than {b} or not",
    "is {a} bigger than {b} yes or no",
    "would you say {a} is greater than {b}",
    "is {a} higher than {b} or not"};
static const char *const T_LESS[] = {
    "is {a} less than {b}",
    "is {a} smaller than {b}",
    "is {a} lower than {b}",
    "tell me if {a} is smaller than {b}",
    "is {a} below {b}",
    "is {a} fewer than {b}",
    "is {a} under {b}",
    "is {a} a lower number than {b}",
    "tell me if {a} is less than {b}",
    "is it true that {a} is smaller than {b}",
    "is {a} a smaller number than {b}",
    "is it true that {a} is less than {b}",
    "{a} is smaller than {b} right",
    "check if {a} is less than {b}",
    "is the number {a} less than {b}",
    "check if {a} is smaller than {b}",
    "is {a} less than {b} or not",
    "is {a} smaller than {b} yes or no",
    "would you say {a} is less than {b}",
    "is {a} lower than {b} or not"};
static const char *const T_TIME[] = {
    "what time is it",
    "what's the time",
    "tell me the time",
    "do you know the time",
    "what is the time",
    "what time is it now",
    "can you tell me the time",
    "what's the time right now",
    "time please",
    "what's the current time",
    "have you got the time",
    "what is the current time",
    "check the time",
    "give me the time",
    "what hour is it",
    "can you check the time",
    "what's the time now",
    "tell me what time it is",
    "got the time",
    "do you have the time",
    "the time please",
    "what is the time now",
    "say the time",
    "tell me the current time",
    "do you know what time it is",
    "what time do you have",
    "what time is it right now",
    "can you tell me what time it is"};
static const char *const T_TIMER[] = {
    "set a timer for {d}",
    "start a timer for {d}",
    "timer for {d}",
    "set a {j} timer",
    "can you set a timer for {d}",
    "start a {j} timer",
    "remind me in {d}",
    "put a timer on for {d}",
    "i need a timer for {d}",
    "make a timer for {d}",
    "wake me up in {d}",
    "set the timer for {d}",
    "put on a {j} timer",
    "please time {d}",
    "alert me in {d}",
    "give me a timer for {d}",
    "set timer {d}",
    "i want a timer for {d}",
    "remind me after {d}",
    "can you start a timer for {d}",
    "timer {d} please",
    "notify me in {d}",
    "let me know in {d}",
    "i want a {j} timer",
    "tell me when {d} are up",
    "set the timer to {d}",
    "create a {j} timer",
    "let me know when {d} are up"};
static const char *const T_COUNT_TO[] = {
    "count to {n}",
    "count up to {n}",
    "can you count to {n}",
    "can you count up to {n}",
    "please count to {n}",
    "let's count to {n}",
    "start counting to {n}",
    "count from one to {n}",
    "count all the way to {n}",
    "i want you to count to {n}",
    "show me how you count to {n}",
    "count all the way up to {n}",
    "count out loud to {n}",
    "count up until {n}",
    "count to {n} out loud",
    "can you count all the way to {n}"};
static const char *const T_COUNT_FROM[] = {
    "count from {a} to {b}",
    "count up from {a} to {b}",
    "can you count from {a} to {b}",
    "start at {a} and count up to {b}",
    "count {a} to {b}",
    "please count from {a} to {b}",
    "begin at {a} and count to {b}",
    "count from {a} up to {b}",
    "from {a} count to {b}",
    "count up starting at {a} to {b}",
    "count from {a} until {b}",
    "can you count up from {a} to {b}"};
static const char *const T_COUNT_DOWN[] = {
    "count down from {n}",
    "countdown from {n}",
    "can you count down from {n}",
    "can you do a countdown from {n}",
    "do a countdown from {n}",
    "start a countdown from {n}",
    "count back from {n}",
    "give me a countdown from {n}",
    "count backwards from {n}",
    "countdown starting from {n}",
    "count down starting at {n}",
    "can you count backwards from {n}"};
static const char *const T_JOKE[] = {
    "tell me a joke",
    "tell a joke",
    "do you know any jokes",
    "can you tell me a joke",
    "make me laugh",
    "say something funny",
    "i want to hear a joke",
    "tell me something funny",
    "joke please",
    "know any good jokes",
    "got any jokes",
    "do you know a joke",
    "tell us a joke",
    "joke time",
    "i'd like a joke",
    "say a joke"};
static const char *const T_STORY_TOPIC[] = {
    "tell me a story about {t}",
    "i want a story about {t}",
    "can you tell me a story about {t}",
    "tell me a short story about {t}",
    "do you know a story about {t}",
    "read me a story about {t}",
    "i'd like a story about {t}",
    "tell a story about {t}",
    "story about {t}",
    "i want to hear a story about {t}",
    "tell me a bedtime story about {t}",
    "can you read me a story about {t}"};
static const char *const T_STORY[] = {
    "tell me a story",
    "tell me a short story",
    "story time",
    "read me a story",
    "tell me a bedtime story",
    "can you tell me a story",
    "i want to hear a story",
    "do you know a story",
    "tell me any story",
    "i'd like a story",
    "tell me a little story",
    "can i have a story",
    "do you know any stories",
    "any stories",
    "tell me one of your stories",
    "tell me one of your short stories"};

typedef struct {
    const char *const *tpl;
    size_t n;
    const char *answer;
} fixed_intent;

static const char *const G_HELLO[] = {
    "hello", "hello there", "hello spike", "hello again", "hello friend", "hello there spike",
    "hi", "hi there", "hi spike", "hi again", "hi friend", "hi there spike", "hey", "hey there",
    "hey spike", "hey again", "hey friend", "hey there spike", "howdy", "howdy there",
    "howdy spike", "howdy again", "howdy friend", "howdy there spike", "good morning",
    "good morning there", "good morning spike", "good morning again", "good morning friend",
    "good morning there spike", "good afternoon", "good afternoon there",
    "good afternoon spike", "good afternoon again", "good afternoon friend",
    "good afternoon there spike", "good evening", "good evening there", "good evening spike",
    "good evening again", "good evening friend", "good evening there spike", "good day",
    "good day there", "good day spike", "good day again", "good day friend",
    "good day there spike", "hiya", "hiya there", "hiya spike", "hiya again", "hiya friend",
    "hiya there spike", "morning", "morning there", "morning spike", "morning again",
    "morning friend", "morning there spike", "greetings", "hey hey", "hello hello", "hi hi",
    "hello hi", "hey good morning", "hi good morning", "well hello", "oh hi", "oh hello there"};
static const char *const G_HOW[] = {
    "how are you",
    "how are you doing",
    "how's it going",
    "how are you today",
    "how do you do",
    "how have you been",
    "what's up",
    "how are you doing today",
    "how is it going",
    "how are you feeling",
    "how's your day",
    "how have you been doing"};
static const char *const G_THANKS[] = {
    "thank you",
    "thanks",
    "thanks a lot",
    "thanks very much",
    "thank you very much",
    "cheers",
    "much appreciated",
    "thank you so much",
    "many thanks",
    "thanks a bunch",
    "thanks spike",
    "thank you spike",
    "thank you kindly"};
static const char *const G_BYE[] = {
    "goodbye",
    "bye",
    "see you later",
    "bye bye",
    "good night",
    "talk to you later",
    "farewell",
    "goodbye spike",
    "see you soon",
    "bye for now",
    "catch you later",
    "talk to you soon",
    "see ya"};
static const char *const G_NAME[] = {
    "what's your name", "what is your name", "who are you", "tell me who you are",
    "do you have a name", "what are you called", "who am i talking to", "your name please",
    "introduce yourself", "what name do you have", "can i know your name",
    "what's the name you go by", "do you have a name i can use", "name please", "say your name",
    "tell me your name please", "can you tell me your name", "tell me your name",
    "what do people call you", "what do they call you", "how do i address you",
    "how should i address you", "what should i call you", "what can i call you",
    "what do i call you", "what shall i call you", "what may i call you",
    "what do you want me to call you", "what would you like me to call you",
    "what do you like to be called", "how should i call you", "what do you prefer to be called",
    "what name should i use for you"};
static const char *const H_HELP[] = {
    "help",
    "what can you do",
    "what can i ask you",
    "what can you help me with",
    "how can you help me",
    "what are you able to do",
    "what do you know how to do",
    "tell me what you can do",
    "what are your skills",
    "what kind of things can you do",
    "i need help",
    "what are you able to help with",
    "what features do you have",
    "list what you can do",
    "can you help me with something",
    "what do you do",
    "what are you good at",
    "what can you help with",
    "help me",
    "how can you help"};
static const char *const Y_HEAR[] = {
    "can you hear me",
    "do you hear me",
    "are you able to hear me",
    "can you still hear me",
    "hear me",
    "can you hear what i'm saying",
    "do you hear what i say",
    "are you able to hear what i say",
    "hear me ok", "can you hear my voice", "is my voice clear", "do you hear my voice"};
static const char *const Y_HERE[] = {
    "are you listening",
    "are you there",
    "are you awake",
    "hello are you there",
    "are you still there",
    "are you around",
    "you there",
    "are you still listening",
    "still there", "hello hello are you there", "spike are you there", "are you there spike"};
static const char *const Y_ROBOT[] = {
    "are you a robot", "are you a computer", "are you a machine", "are you a real robot",
    "are you an ai", "are you artificial", "are you a program", "are you a computer program",
    "am i talking to a robot", "is this a robot", "you are a robot right", "am i talking to a machine", "are you some kind of robot", "is this a computer", "you're a robot", "are you a robot or a computer"};
static const char *const Y_HUMAN[] = {
    "are you human",
    "are you a person",
    "are you a real person",
    "are you a real human",
    "are you alive",
    "is this a real person",
    "am i talking to a human",
    "am i talking to a real person",
    "you are a human right", "is this a human", "am i talking to a person", "is this a real human"};

static const fixed_intent GREET[] = {
    {G_HELLO, COUNT(G_HELLO), "hello! how can i help you?"},
    {G_HOW, COUNT(G_HOW), "i'm doing well, thank you. how can i help?"},
    {G_THANKS, COUNT(G_THANKS), "you're welcome!"},
    {G_BYE, COUNT(G_BYE), "goodbye! talk to you soon."},
    {G_NAME, COUNT(G_NAME), "i'm spike, a voice agent that runs on spiking neurons."},
};
static const fixed_intent YESNO[] = {
    {Y_HEAR, COUNT(Y_HEAR), "yes, i can hear you."},
    {Y_HERE, COUNT(Y_HERE), "yes, i'm here."},
    {Y_ROBOT, COUNT(Y_ROBOT), "yes, i'm a computer program."},
    {Y_HUMAN, COUNT(Y_HUMAN), "no, i'm a computer program."},
};

static const char *const OOD[] = {
    "what's the weather like", "will it rain tomorrow", "play some music", "turn on the lights",
    "book a flight to paris", "order a pizza", "send an email to my boss",
    "what's the capital of france", "who is the president", "how tall is mount everest",
    "translate hello into spanish", "call my mom", "navigate to the airport",
    "what's the stock price of apple", "set an alarm for seven am", "what's on my calendar",
    "read my messages", "how do i cook pasta", "what's the score of the game", "buy some milk",
    "open the garage door", "find a restaurant nearby", "what day is it today",
    "what's the date today", "turn up the volume", "who wrote hamlet", "how far is the moon",
    "recommend a movie", "what's the population of china", "lock the front door",
    "order a taxi", "what's the exchange rate for euros", "play the radio",
    "how do i fix my bike", "show me the news", "what is the speed of light",
    "where is my phone", "start the dishwasher", "how many calories are in an apple",
    "who won the world cup", "text my sister", "what's the traffic like",
    "spell the word necessary", "what's a good name for a dog", "how old is the universe",
    "turn off the heating", "find me a hotel", "what should i wear today",
    "what's the weather in london", "is it cold outside", "play my playlist",
    "dim the lights", "book a table for two", "order some flowers", "email my team",
    "what's the tallest building", "who invented the telephone", "how deep is the ocean",
    "translate thank you into french", "call a doctor", "directions to the station",
    "how is the stock market", "wake me at six tomorrow", "what meetings do i have",
    "turn on the tv", "switch off the fan", "turn on the radio", "switch on the lamp", "what's the news today", "who is the best football player", "how do i get to the mall", "close the curtains", "what is the capital of spain", "order me a coffee", "send a text to my dad", "what's the forecast for today", "play some jazz", "where is the nearest bank", "how much does a car cost", "turn off the tv"};

static const char *const PREFIX[] = {
    "hey ",
    "ok ",
    "please ",
    "uh ",
    "so ",
    "um ",
    "hey spike ",
    "alright ",
    "excuse me ",
    "well ",
    "quick question ",
    "yo "};
static const char *const SUFFIX[] = {
    " please",
    " for me",
    " thanks",
    " right away",
    " now",
    " if you can",
    " if possible",
    " real quick"};
static const char *const WRAP[] = {
    "can you tell me {q}",
    "tell me {q}",
    "i want to know {q}",
    "can you please tell me {q}",
    "i'd like to know {q}",
    "could you tell me {q}",
    "would you tell me {q}",
    "i would like to know {q}"};

/* ---- random numbers --------------------------------------------------------------- */

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t pick(uint64_t *s, size_t n)
{
    return (size_t)(next(s) % n);
}

static int range(uint64_t *s, int lo, int hi) /* inclusive */
{
    return lo + (int)pick(s, (size_t)(hi - lo + 1));
}

/* A template index from the training or the held-out share. */
static size_t pick_tpl(uint64_t *s, size_t n, bool held)
{
    for (;;) {
        size_t i = pick(s, n);
        if (HELD(i) == held)
            return i;
    }
}

/* An operand: small numbers more often, as people ask. */
static int operand(uint64_t *s)
{
    int r = range(s, 0, 9);
    return r < 5 ? range(s, 0, 12) : r < 8 ? range(s, 13, 30) : range(s, 31, 100);
}

/* ---- building a request ------------------------------------------------------------ */

typedef struct {
    char user[256];
    char agent[1024];   /* after "agent:" (with the leading space) */
    char expect[2048];
    st_dialogue_intent intent;
    int hour, minute;
    long long timer_s;
} example;

/* dst = tpl with {a} {b} {n} {d} {j} {t} {q} replaced */
static void fill(char *dst, size_t cap, const char *tpl, const char *const slots[7])
{
    static const char names[] = "abndjtq";
    size_t o = 0;
    for (const char *p = tpl; *p && o + 1 < cap;) {
        const char *k;
        if (p[0] == '{' && p[1] && p[2] == '}' && (k = strchr(names, p[1])) && slots[k - names]) {
            const char *v = slots[k - names];
            size_t l = strlen(v);
            if (o + l >= cap)
                l = cap - 1 - o;
            memcpy(dst + o, v, l);
            o += l;
            p += 3;
        } else {
            dst[o++] = *p++;
        }
    }
    dst[o] = '\0';
}

static void num(int v, char *buf, size_t cap)
{
    st_words_from_number(v, buf, cap);
}

/* Prefix, suffix and question wrapper: from the split's share, often none. */
static void dress(uint64_t *s, bool held, bool question, char *user, size_t cap)
{
    char tmp[256];
    if (question && pick(s, 5) == 0) {
        const char *const slots[7] = {0, 0, 0, 0, 0, 0, user};
        fill(tmp, sizeof tmp, WRAP[pick_tpl(s, COUNT(WRAP), held)], slots);
        snprintf(user, cap, "%s", tmp);
    }
    if (pick(s, 4) == 0) {
        snprintf(tmp, sizeof tmp, "%s%s", PREFIX[pick_tpl(s, COUNT(PREFIX), held)], user);
        snprintf(user, cap, "%s", tmp);
    }
    if (pick(s, 5) == 0) {
        snprintf(tmp, sizeof tmp, "%s%s", user, SUFFIX[pick_tpl(s, COUNT(SUFFIX), held)]);
        snprintf(user, cap, "%s", tmp);
    }
}

/* Training only: a filler word or two at random places, so the model learns
   to read past words that carry nothing (none of them is a held-out prefix
   or suffix). */
static const char *const FILLER[] = {"um",    "like",     "so",    "just", "hey",   "ok",
                                     "now",   "quickly",  "you know", "actually", "maybe",
                                     "well",  "please",   "okay",  "hmm",  "oh"};

static void augment(uint64_t *s, char *user, size_t cap)
{
    int n = pick(s, 10) < 3 ? 1 + (int)pick(s, 2) : 0;
    for (int k = 0; k < n; k++) {
        size_t len = strlen(user), spaces = 0;
        for (size_t i = 0; i < len; i++)
            spaces += user[i] == ' ';
        size_t at = pick(s, spaces + 2), pos = len, w = 0; /* before word `at`, or at the end */
        for (size_t i = 0; i < len; i++)
            if ((i == 0 || user[i - 1] == ' ') && w++ == at) {
                pos = i;
                break;
            }
        const char *f = FILLER[pick(s, COUNT(FILLER))];
        char tmp[512];
        int m = pos >= len ? snprintf(tmp, sizeof tmp, "%s %s", user, f)
                           : snprintf(tmp, sizeof tmp, "%.*s%s %s", (int)pos, user, f, user + pos);
        if (m > 0 && (size_t)m < cap)
            memcpy(user, tmp, (size_t)m + 1);
    }
}

static void add_expect(example *e, const char *answer)
{
    size_t l = strlen(e->expect);
    snprintf(e->expect + l, sizeof e->expect - l, "%s%s", l ? "|" : "", answer);
}

static void tool_result(const char *call, int hour, int minute, char *out, size_t cap)
{
    st_dialogue_tools t = {.hour = hour, .minute = minute};
    st_dialogue_tool(&t, call, strlen(call), out, cap);
}

static void make_arith(uint64_t *s, bool held, example *e)
{
    static const char *const *const tpl[4] = {T_PLUS, T_MINUS, T_TIMES, T_DIV};
    static const size_t ntpl[4] = {COUNT(T_PLUS), COUNT(T_MINUS), COUNT(T_TIMES), COUNT(T_DIV)};
    static const char *const opw[4] = {"plus", "minus", "times", "divided by"};
    int op = (int)pick(s, 4), a = operand(s), b = operand(s);
    if (op == 2 && pick(s, 3))
        b = range(s, 0, 12);
    if (op == 3) {
        b = range(s, 1, 12);
        a = pick(s, 4) ? b * range(s, 0, 12) : range(s, 0, 100);
    }
    char wa[64], wb[64], call[160], res[160], ans[400];
    num(a, wa, sizeof wa);
    num(b, wb, sizeof wb);
    const char *const slots[7] = {wa, wb, 0, 0, 0, 0, 0};
    size_t ti = pick_tpl(s, ntpl[op], held);
    fill(e->user, sizeof e->user, tpl[op][ti], slots);
    dress(s, held, strncmp(e->user, "what", 4) == 0 || strncmp(e->user, "how", 3) == 0, e->user,
          sizeof e->user);
    snprintf(call, sizeof call, "calc %s %s %s", wa, opw[op], wb);
    tool_result(call, 0, 0, res, sizeof res);
    snprintf(ans, sizeof ans, "%s %s %s is %s", wa, opw[op], wb, res);
    snprintf(e->agent, sizeof e->agent, " [%s]{ %s} %s", call, res, ans);
    add_expect(e, ans);
    if (op == 0 || op == 2) {
        snprintf(ans, sizeof ans, "%s %s %s is %s", wb, opw[op], wa, res);
        add_expect(e, ans);
    }
    e->intent = ST_DLG_ARITH;
}

static void make_compare(uint64_t *s, bool held, example *e)
{
    bool greater = pick(s, 2);
    int a = operand(s), b = operand(s);
    if (a == b)
        b = a + range(s, 1, 9);
    char wa[64], wb[64], call[160], res[16], ans[400];
    num(a, wa, sizeof wa);
    num(b, wb, sizeof wb);
    const char *const slots[7] = {wa, wb, 0, 0, 0, 0, 0};
    const char *rel = greater ? "greater than" : "less than";
    fill(e->user, sizeof e->user,
         greater ? T_GREATER[pick_tpl(s, COUNT(T_GREATER), held)]
                 : T_LESS[pick_tpl(s, COUNT(T_LESS), held)],
         slots);
    dress(s, held, false, e->user, sizeof e->user);
    snprintf(call, sizeof call, "calc %s %s %s", wa, rel, wb);
    tool_result(call, 0, 0, res, sizeof res);
    if (!strcmp(res, "yes"))
        snprintf(ans, sizeof ans, "yes, %s is %s %s", wa, rel, wb);
    else
        snprintf(ans, sizeof ans, "no, %s is not %s %s", wa, rel, wb);
    snprintf(e->agent, sizeof e->agent, " [%s]{ %s} %s", call, res, ans);
    add_expect(e, ans);
    e->intent = ST_DLG_COMPARE;
}

static void make_time(uint64_t *s, bool held, example *e)
{
    e->hour = range(s, 0, 23);
    e->minute = pick(s, 4) ? range(s, 0, 59) : 5 * range(s, 0, 11);
    char res[160], ans[200];
    snprintf(e->user, sizeof e->user, "%s", T_TIME[pick_tpl(s, COUNT(T_TIME), held)]);
    dress(s, held, strncmp(e->user, "what", 4) == 0, e->user, sizeof e->user);
    tool_result("time", e->hour, e->minute, res, sizeof res);
    snprintf(ans, sizeof ans, "it is %s", res);
    snprintf(e->agent, sizeof e->agent, " [time]{ %s} %s", res, ans);
    add_expect(e, ans);
    e->intent = ST_DLG_TIME;
}

static void make_timer(uint64_t *s, bool held, example *e)
{
    static const int secs[] = {5, 10, 15, 20, 30, 40, 45, 50, 60, 90};
    static const int mins[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 25, 30, 40, 45, 60};
    int unit = (int)pick(s, 10), n;
    const char *u;
    long long per;
    if (unit < 2) {
        n = secs[pick(s, COUNT(secs))], u = "second", per = 1;
    } else if (unit < 9) {
        n = mins[pick(s, COUNT(mins))], u = "minute", per = 60;
    } else {
        n = range(s, 1, 5), u = "hour", per = 3600;
    }
    char wn[64], d[96], j[96], said[96], call[160], res[16], ans[200];
    num(n, wn, sizeof wn);
    snprintf(d, sizeof d, "%s %s%s", wn, u, n == 1 ? "" : "s");
    snprintf(j, sizeof j, "%s %s", wn, u);
    snprintf(said, sizeof said, "%s", d);
    if (n == 1 && pick(s, 2))
        snprintf(said, sizeof said, "%s %s", per == 3600 ? "an" : "a", u);
    if (n == 30 && per == 60 && pick(s, 2))
        snprintf(said, sizeof said, "half an hour");
    const char *const slots[7] = {0, 0, 0, said, j, 0, 0};
    fill(e->user, sizeof e->user, T_TIMER[pick_tpl(s, COUNT(T_TIMER), held)], slots);
    dress(s, held, false, e->user, sizeof e->user);
    snprintf(call, sizeof call, "timer %s", d);
    tool_result(call, 0, 0, res, sizeof res);
    snprintf(ans, sizeof ans, "ok, timer set for %s", d);
    snprintf(e->agent, sizeof e->agent, " [%s]{ %s} %s", call, res, ans);
    add_expect(e, ans);
    e->timer_s = n * per;
    e->intent = ST_DLG_TIMER;
}

static void make_count(uint64_t *s, bool held, example *e)
{
    int kind = (int)pick(s, 4), from, to;
    char wa[64], wb[64];
    if (kind <= 1) {
        from = 1, to = range(s, 2, 20);
        num(to, wb, sizeof wb);
        const char *const slots[7] = {0, 0, wb, 0, 0, 0, 0};
        fill(e->user, sizeof e->user, T_COUNT_TO[pick_tpl(s, COUNT(T_COUNT_TO), held)], slots);
    } else if (kind == 2) {
        from = range(s, 2, 15), to = from + range(s, 2, 10); /* one: T_COUNT_TO's */
        num(from, wa, sizeof wa);
        num(to, wb, sizeof wb);
        const char *const slots[7] = {wa, wb, 0, 0, 0, 0, 0};
        fill(e->user, sizeof e->user, T_COUNT_FROM[pick_tpl(s, COUNT(T_COUNT_FROM), held)],
             slots);
    } else {
        from = range(s, 3, 15), to = 1;
        num(from, wa, sizeof wa);
        const char *const slots[7] = {0, 0, wa, 0, 0, 0, 0};
        fill(e->user, sizeof e->user, T_COUNT_DOWN[pick_tpl(s, COUNT(T_COUNT_DOWN), held)],
             slots);
    }
    dress(s, held, false, e->user, sizeof e->user);
    char ans[800] = "";
    size_t o = 0;
    for (int v = from;; v += from <= to ? 1 : -1) {
        char w[64];
        num(v, w, sizeof w);
        o += (size_t)snprintf(ans + o, sizeof ans - o, "%s%s", o ? " " : "", w);
        if (v == to)
            break;
    }
    snprintf(e->agent, sizeof e->agent, " %s", ans);
    add_expect(e, ans);
    e->intent = ST_DLG_COUNT;
}

static void make_fixed(uint64_t *s, bool held, const fixed_intent *set, size_t n,
                       st_dialogue_intent intent, example *e)
{
    const fixed_intent *f = &set[pick(s, n)];
    snprintf(e->user, sizeof e->user, "%s", f->tpl[pick_tpl(s, f->n, held)]);
    snprintf(e->agent, sizeof e->agent, " %s", f->answer);
    add_expect(e, f->answer);
    e->intent = intent;
}

static void make_help(uint64_t *s, bool held, example *e)
{
    snprintf(e->user, sizeof e->user, "%s", H_HELP[pick_tpl(s, COUNT(H_HELP), held)]);
    if (pick(s, 3) == 0)
        dress(s, held, false, e->user, sizeof e->user);
    snprintf(e->agent, sizeof e->agent, " %s", HELP);
    add_expect(e, HELP);
    e->intent = ST_DLG_HELP;
}

static void make_joke(uint64_t *s, bool held, example *e)
{
    snprintf(e->user, sizeof e->user, "%s", T_JOKE[pick_tpl(s, COUNT(T_JOKE), held)]);
    dress(s, held, false, e->user, sizeof e->user);
    snprintf(e->agent, sizeof e->agent, " %s", JOKES[pick(s, COUNT(JOKES))]);
    for (size_t k = 0; k < COUNT(JOKES); k++)
        add_expect(e, JOKES[k]);
    e->intent = ST_DLG_JOKE;
}

static void make_story(uint64_t *s, bool held, example *e)
{
    size_t k = pick(s, COUNT(STORIES));
    if (pick(s, 3)) {
        const char *const slots[7] = {0, 0, 0, 0, 0, STORIES[k].topics[pick(s, 3)], 0};
        fill(e->user, sizeof e->user, T_STORY_TOPIC[pick_tpl(s, COUNT(T_STORY_TOPIC), held)],
             slots);
        add_expect(e, STORIES[k].text);
    } else {
        snprintf(e->user, sizeof e->user, "%s", T_STORY[pick_tpl(s, COUNT(T_STORY), held)]);
        for (size_t i = 0; i < COUNT(STORIES); i++)
            add_expect(e, STORIES[i].text);
    }
    dress(s, held, false, e->user, sizeof e->user);
    snprintf(e->agent, sizeof e->agent, " %s", STORIES[k].text);
    e->intent = ST_DLG_STORY;
}

static void make_ood(uint64_t *s, bool held, example *e)
{
    snprintf(e->user, sizeof e->user, "%s", OOD[pick_tpl(s, COUNT(OOD), held)]);
    if (pick(s, 3) == 0)
        dress(s, held, false, e->user, sizeof e->user);
    snprintf(e->agent, sizeof e->agent, " %s", SORRY);
    e->intent = ST_DLG_OOD;
}

/* Training mix, per cent: arithmetic 24, comparisons 8, time 7, timer 10,
   counting 11, greetings 10, help 4, yes/no 6, jokes 6, stories 5,
   out of domain 9. */
static void make(uint64_t *s, bool held, st_dialogue_intent intent, example *e)
{
    memset(e, 0, sizeof *e);
    e->hour = 12;
    e->timer_s = -1;
    switch (intent) {
    case ST_DLG_ARITH: make_arith(s, held, e); break;
    case ST_DLG_COMPARE: make_compare(s, held, e); break;
    case ST_DLG_TIME: make_time(s, held, e); break;
    case ST_DLG_TIMER: make_timer(s, held, e); break;
    case ST_DLG_COUNT: make_count(s, held, e); break;
    case ST_DLG_GREET: make_fixed(s, held, GREET, COUNT(GREET), ST_DLG_GREET, e); break;
    case ST_DLG_HELP: make_help(s, held, e); break;
    case ST_DLG_YESNO: make_fixed(s, held, YESNO, COUNT(YESNO), ST_DLG_YESNO, e); break;
    case ST_DLG_JOKE: make_joke(s, held, e); break;
    case ST_DLG_STORY: make_story(s, held, e); break;
    default: make_ood(s, held, e); break;
    }
}

static st_dialogue_intent train_intent(uint64_t *s)
{
    static const int pct[ST_DLG_N_INTENTS] = {24, 8, 7, 10, 11, 10, 4, 6, 6, 5, 9};
    int r = (int)pick(s, 100);
    for (int i = 0; i < ST_DLG_N_INTENTS; i++) {
        if (r < pct[i])
            return (st_dialogue_intent)i;
        r -= pct[i];
    }
    return ST_DLG_OOD;
}

const char *st_dialogue_intent_name(st_dialogue_intent i)
{
    static const char *const names[ST_DLG_N_INTENTS] = {
        "arithmetic", "compare", "time", "timer", "count", "greeting",
        "help",       "yes/no",  "joke", "story", "out-of-domain"};
    return (unsigned)i < ST_DLG_N_INTENTS ? names[i] : NULL;
}

/* ---- the corpus -------------------------------------------------------------------- */

st_dialogue_gen_params st_dialogue_gen_default_params(void)
{
    return (st_dialogue_gen_params){.seed = 1, .dialogues = 60000, .chatterbot_repeat = 1};
}

typedef struct {
    char **rec;
    size_t n, cap;
} records;

static int push(records *r, const char *text)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? 2 * r->cap : 1024;
        char **b = realloc(r->rec, nc * sizeof *b);
        if (!b)
            return ST_ERR_NOMEM;
        r->rec = b;
        r->cap = nc;
    }
    if (!(r->rec[r->n] = strdup(text)))
        return ST_ERR_NOMEM;
    r->n++;
    return ST_OK;
}

/* Is a normalised opening line one of the agent's own fixed intents? */
static bool own_intent(const char *u)
{
    if (strstr(u, "joke") || strstr(u, "story") || strstr(u, "time") || strstr(u, "count"))
        return true;
    const fixed_intent *sets[2] = {GREET, YESNO};
    size_t ns[2] = {COUNT(GREET), COUNT(YESNO)};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < ns[k]; i++)
            for (size_t j = 0; j < sets[k][i].n; j++)
                if (!strcmp(u, sets[k][i].tpl[j]))
                    return true;
    for (size_t j = 0; j < COUNT(H_HELP); j++)
        if (!strcmp(u, H_HELP[j]))
            return true;
    return false;
}

/* An agent line of chatterbot's: lower case, the characters the tool
   syntax uses dropped, spaces collapsed. */
static void agent_text(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    bool sp = true;
    for (const char *p = in; *p && o + 1 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '[' || c == ']' || c == '{' || c == '}' || c == '\r' || c == '\t' || c < 32)
            continue;
        if (c == ' ') {
            if (!sp)
                out[o++] = ' ';
            sp = true;
            continue;
        }
        out[o++] = (char)(c < 128 ? (char)(c >= 'A' && c <= 'Z' ? c + 32 : c) : (char)c);
        sp = false;
    }
    while (o && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

static int chatterbot(const char *path, unsigned repeat, records *r)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return st_error(ST_ERR_IO, "dialogue corpus: cannot open '%s'", path);
    char line[4096], rec[16384], buf[4096];
    size_t rl = 0;
    bool skip = false, first = true;
    int e = ST_OK;
    for (;;) {
        bool eof = !fgets(line, sizeof line, f);
        size_t l = eof ? 0 : strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
            line[--l] = '\0';
        if (eof || !l) {
            if (rl && !skip)
                for (unsigned k = 0; k < repeat && e == ST_OK; k++)
                    if ((e = push(r, rec)))
                        break;
            rl = 0;
            rec[0] = '\0';
            skip = false;
            first = true;
            if (eof || e)
                break;
            continue;
        }
        bool user = !strncmp(line, "A:", 2), agent = !strncmp(line, "B:", 2);
        if (!user && !agent)
            continue;
        const char *t = line + 2;
        while (*t == ' ')
            t++;
        if (user) {
            st_dialogue_normalize(t, buf, sizeof buf);
            if (first && own_intent(buf))
                skip = true;
            first = false;
            if (!*buf)
                skip = true;
        } else {
            agent_text(t, buf, sizeof buf);
            if (!*buf)
                skip = true;
        }
        int n = snprintf(rec + rl, sizeof rec - rl, "%s: %s\n", user ? "user" : "agent", buf);
        if (n < 0 || (size_t)n >= sizeof rec - rl)
            skip = true;
        else
            rl += (size_t)n;
    }
    fclose(f);
    return e == ST_ERR_NOMEM ? st_error(ST_ERR_NOMEM, "dialogue corpus: out of memory") : e;
}

/* ---- what the recognizer hears ------------------------------------------------------ */

/* The agent's LM reads what the recognizer heard, not what was said: only
   the recognizer's vocabulary survives (models/README.md), the rest of a
   request is dropped ("what is seven times six" -> "what seven times six",
   "tell me a joke" -> "joke"). A share of the training requests is shown
   that way, with the same answer, so the model answers keyword requests;
   one whose numbers the recognizer cannot say (ten, twenty, ...) is left
   as it was, since its answer would not follow from what is heard, and so
   is one whose meaning is lost (a comparison, a name question). */
static const char *const HEARD[] = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "hello", "hi", "plus", "minus", "times", "what", "time", "timer", "seconds", "minutes",
    "count", "help", "repeat", "thanks", "goodbye", "joke", "story"};
static const char *const UNHEARD_NUMBERS[] = {
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
    "ninety", "hundred", "half", "quarter"};

static bool in_set(const char *w, size_t n, const char *const *set, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strlen(set[i]) == n && !strncmp(w, set[i], n))
            return true;
    return false;
}

/* user -> the words of it the recognizer can hear; false (user unchanged)
   when that loses a number or leaves nothing. Units and words in the
   plural/singular the recognizer has one form of are mapped to it. */
/* Whether the words heard still carry the request's meaning. */
static bool still_means(const char *h, st_dialogue_intent intent)
{
    char b[520];
    snprintf(b, sizeof b, " %s ", h);
#define HAS(w) (strstr(b, " " w " ") != NULL)
    switch (intent) {
    case ST_DLG_ARITH: return HAS("plus") || HAS("minus") || HAS("times");
    case ST_DLG_TIME: return HAS("time");
    case ST_DLG_TIMER: return HAS("seconds") || HAS("minutes");
    case ST_DLG_COUNT: return HAS("count");
    case ST_DLG_JOKE: return HAS("joke");
    case ST_DLG_STORY: return HAS("story");
    case ST_DLG_HELP: return HAS("help");
    case ST_DLG_GREET: return HAS("hello") || HAS("hi") || HAS("thanks") || HAS("goodbye");
    default: return false; /* comparisons, names, yes/no: nothing of them is heard */
    }
#undef HAS
}

static bool heard_only(char *user, size_t cap, st_dialogue_intent intent)
{
    char out[512];
    size_t o = 0;
    const char *p = user;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        size_t n = (size_t)(p - w);
        if (!n)
            break;
        const char *keep = NULL;
        char one[32];
        if (n >= sizeof one)
            continue;
        memcpy(one, w, n);
        one[n] = '\0';
        if (!strcmp(one, "minute") || !strcmp(one, "second"))
            continue; /* "one minute": the recognizer knows "minutes" only */
        if (!strcmp(one, "jokes") || !strcmp(one, "stories"))
            keep = one[0] == 'j' ? "joke" : "story";
        else if (in_set(w, n, HEARD, COUNT(HEARD)))
            keep = one;
        else if (!strcmp(one, "a") && !strncmp(p, " minute", 7))
            return false; /* "a minute" */
        else if (in_set(w, n, UNHEARD_NUMBERS, COUNT(UNHEARD_NUMBERS)))
            return false;
        if (keep) {
            int m = snprintf(out + o, sizeof out - o, "%s%s", o ? " " : "", keep);
            if (m < 0 || (size_t)m >= sizeof out - o)
                return false;
            o += (size_t)m;
        }
    }
    if (!o || o >= cap || !still_means(out, intent))
        return false;
    memcpy(user, out, o + 1);
    return true;
}

/* What the recognizer makes of speech that is no request: a few command
   words ("left", "go up", "on three"), or a lone "stop" / "no" when the
   agent was not speaking. The answer is short and says so, never a guess. */
static void make_fragment(uint64_t *s, example *e)
{
    static const char *const noise[] = {"up", "down", "left", "right", "on", "off", "go",
                                        "yes", "no", "what", "plus", "minus", "times", "count"};
    static const char *const quiet[] = {"stop", "stop stop", "no stop", "ok stop", "stop please",
                                        "no", "no no", "ok", "okay", "hmm", "um"};
    memset(e, 0, sizeof *e);
    e->hour = 12;
    e->timer_s = -1;
    e->intent = ST_DLG_OOD;
    if (pick(s, 3) == 0) {
        snprintf(e->user, sizeof e->user, "%s", quiet[pick(s, COUNT(quiet))]);
        snprintf(e->agent, sizeof e->agent, " ok.");
        return;
    }
    int n = 1 + (int)pick(s, 3);
    size_t o = 0;
    for (int k = 0; k < n; k++) {
        /* any of them, "what" and "plus" alone too (a lone "what" once drew
           non-words from the model: no fragment had shown it) */
        const char *w = pick(s, 4) == 0 ? HEARD[pick(s, 10)] : noise[pick(s, COUNT(noise))];
        if (k == n - 1 && n > 1 && pick(s, 2))
            w = noise[COUNT(noise) - 5 + pick(s, 5)]; /* "go plus", "left what" */
        int m = snprintf(e->user + o, sizeof e->user - o, "%s%s", o ? " " : "", w);
        if (m > 0)
            o += (size_t)m;
    }
    snprintf(e->agent, sizeof e->agent, " sorry, i didn't catch that. could you say it again?");
}

int st_dialogue_corpus(const st_dialogue_gen_params *p, char **text, size_t *len)
{
    records r = {0};
    uint64_t s = p->seed;
    int e = ST_OK;
    char buf[2048];
    for (size_t i = 0; i < p->dialogues && !e; i++) {
        example ex;
        if (pick(&s, 100) < 3) {
            make_fragment(&s, &ex);
        } else {
            make(&s, false, train_intent(&s), &ex);
            augment(&s, ex.user, sizeof ex.user);
            if (pick(&s, 100) < 15)
                heard_only(ex.user, sizeof ex.user, ex.intent);
        }
        snprintf(buf, sizeof buf, "user: %s\nagent:%s\n", ex.user, ex.agent);
        e = push(&r, buf);
    }
    if (!e && p->chatterbot_path)
        e = chatterbot(p->chatterbot_path, p->chatterbot_repeat ? p->chatterbot_repeat : 1, &r);
    size_t total = 0;
    for (size_t i = 0; i < r.n; i++)
        total += strlen(r.rec[i]) + 1;
    char *out = e ? NULL : malloc(total + 1);
    if (!e && !out)
        e = ST_ERR_NOMEM;
    if (!e) {
        for (size_t i = r.n; i > 1; i--) { /* shuffle */
            size_t j = pick(&s, i);
            char *t = r.rec[i - 1];
            r.rec[i - 1] = r.rec[j];
            r.rec[j] = t;
        }
        size_t o = 0;
        for (size_t i = 0; i < r.n; i++) {
            size_t l = strlen(r.rec[i]);
            memcpy(out + o, r.rec[i], l);
            o += l;
            out[o++] = '\n';
        }
        out[o] = '\0';
        *text = out;
        *len = o;
    }
    for (size_t i = 0; i < r.n; i++)
        free(r.rec[i]);
    free(r.rec);
    if (e == ST_ERR_NOMEM)
        return st_error(ST_ERR_NOMEM, "dialogue corpus: out of memory");
    return e;
}

void st_dialogue_answer_bytes(const char *text, size_t len, uint8_t *mask)
{
    bool line_start = true, agent = false, result = false;
    for (size_t i = 0; i < len; i++) {
        if (line_start) {
            agent = len - i >= 6 && !memcmp(text + i, "agent:", 6);
            if (agent) {
                memset(mask + i, 0, 6);
                i += 5;
                line_start = false;
                continue;
            }
        }
        char c = text[i];
        if (agent && c == '{')
            result = true;
        mask[i] = agent && !result;
        if (agent && c == '}')
            result = false;
        line_start = c == '\n';
        if (line_start)
            agent = result = false;
    }
}

/* ---- held-out requests and the checker ------------------------------------------------ */

int st_dialogue_heldout(uint64_t seed, size_t n, st_dialogue_case **cases, size_t *n_out)
{
    st_dialogue_case *c = calloc(n ? n : 1, sizeof *c);
    if (!c)
        return st_error(ST_ERR_NOMEM, "held-out requests: out of memory");
    /* in-domain intents in equal turns (arithmetic twice), one in ten out of domain */
    static const st_dialogue_intent order[] = {
        ST_DLG_ARITH, ST_DLG_COMPARE, ST_DLG_TIME,  ST_DLG_TIMER, ST_DLG_ARITH,
        ST_DLG_COUNT, ST_DLG_GREET,   ST_DLG_HELP,  ST_DLG_YESNO, ST_DLG_OOD,
        ST_DLG_JOKE,  ST_DLG_STORY,   ST_DLG_ARITH, ST_DLG_TIMER, ST_DLG_COUNT,
        ST_DLG_TIME,  ST_DLG_COMPARE, ST_DLG_GREET, ST_DLG_YESNO, ST_DLG_OOD};
    uint64_t s = seed ^ 0x48454C444F5554ull;
    for (size_t i = 0; i < n; i++) {
        example ex;
        make(&s, true, order[i % COUNT(order)], &ex);
        snprintf(c[i].user, sizeof c[i].user, "%s", ex.user);
        snprintf(c[i].expect, sizeof c[i].expect, "%s", ex.expect);
        c[i].intent = ex.intent;
        c[i].hour = ex.hour;
        c[i].minute = ex.minute;
        c[i].timer_s = ex.timer_s;
    }
    *cases = c;
    *n_out = n;
    return ST_OK;
}

static size_t words(const char *s)
{
    size_t n = 0;
    bool in = false;
    for (; *s; s++) {
        bool w = *s != ' ';
        n += w && !in;
        in = w;
    }
    return n;
}

bool st_dialogue_check(const st_dialogue_case *c, const char *reply, const st_dialogue_info *info,
                       const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    *why = NULL;
    if (info && info->fallback) {
        *why = "the model wrote nothing usable";
        return false;
    }
    if (c->intent == ST_DLG_OOD) {
        size_t w = words(reply);
        if (!w || w > 40) {
            *why = "not a short answer";
            return false;
        }
        if (strpbrk(reply, "[]{}")) {
            *why = "tool syntax in the answer";
            return false;
        }
        if (info && info->n_tools) {
            *why = "called a tool";
            return false;
        }
        return true;
    }
    if (c->intent == ST_DLG_TIMER && (!info || info->timer_s != c->timer_s)) {
        *why = "the timer was not set to the time asked";
        return false;
    }
    size_t rl = strlen(reply);
    for (const char *e = c->expect; *e;) {
        const char *bar = strchr(e, '|');
        size_t el = bar ? (size_t)(bar - e) : strlen(e);
        if (el == rl && !memcmp(e, reply, rl))
            return true;
        e += el + (bar ? 1 : 0);
    }
    *why = "not the right answer";
    return false;
}
