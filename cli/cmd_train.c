/*  cli/cmd_train.c - `spiketalk train --config FILE`: trains a spiking
    network described in a configuration file (snn/train.h), with a
    progress bar, a table line and a CSV row per epoch, a checkpoint after
    every epoch, resumption from one, and export to the engine's model file
    and NIR at the end.

    A thin layer: the configuration is parsed, the data made or loaded, the
    model, the trainer and every check built by the library before the first
    step, so a bad configuration fails in well under a second with a message
    naming the file, line and key.
*/
#include "cli.h"

#include "snn/train.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk train --config FILE [--resume CKPT] [--threads N] [--seed S]\n"
            "                       [--epochs N] [--check]\n"
            "\n"
            "Trains a spiking network with surrogate-gradient backpropagation through time,\n"
            "as the configuration FILE describes, and writes what its [train] section asks\n"
            "for: a CSV log of every epoch, a checkpoint after every epoch, and at the end\n"
            "the network in the engine's model file format (`spiketalk snn run`) and NIR.\n"
            "\n"
            "options:\n"
            "  --config FILE   the run: data, layers, surrogate, loss, optimizer, epochs\n"
            "  --resume CKPT   continue from a checkpoint of this configuration, exactly\n"
            "                  as if the run had never stopped\n"
            "  --threads N     worker threads (0: one per core); results do not depend on it\n"
            "  --seed S        the seed of the initial weights and the epoch shuffles\n"
            "                  (the data keeps [data] seed)\n"
            "  --epochs N      train for N epochs in all instead of [train] epochs\n"
            "  --check         build everything, check it, print a summary, train nothing\n"
            "\n"
            "A configuration (docs/TRAINING.md has every key; docs/examples/ has runs):\n"
            "\n"
            "  [data]\n"
            "  task = bands            # generated: bands | xor | sequence; or file = PATH\n"
            "  samples = 2000          # training samples; valid_samples = a held-out set\n"
            "  valid_samples = 500\n"
            "  steps = 100             # time steps per sample\n"
            "  channels = 40           # inputs per step\n"
            "  classes = 4\n"
            "\n"
            "  [layer hidden]          # one section per layer, in order\n"
            "  type = dense            # dense | conv1d | delay\n"
            "  neurons = 128\n"
            "  model = lif             # lif | lsnn | cubalif | li (the read-out)\n"
            "  recurrent = yes\n"
            "  tau_mem_inv = 100       # any neuron parameter, by its Norse name\n"
            "  init_scale = 4          # weights uniform in +-init_scale/sqrt(fan_in)\n"
            "\n"
            "  [layer out]\n"
            "  neurons = 4\n"
            "  model = li\n"
            "\n"
            "  [surrogate]\n"
            "  function = superspike   # superspike | fast_sigmoid | arctan; alpha = ...\n"
            "  [loss]\n"
            "  type = ce_max           # ce_max | ce_mean | ce_last | ctc | ce_frame; rate_reg = ...\n"
            "  [optimizer]\n"
            "  type = adamw            # adam | adamw\n"
            "  lr = 2e-3               # warmup = steps, schedule = cosine, clip = norm\n"
            "  [train]\n"
            "  epochs = 20\n"
            "  batch = 32\n"
            "  log = run.csv           # also checkpoint = F, export = F.stm, export_nir = F\n"
            "\n"
            "examples:\n"
            "  spiketalk train --config docs/examples/bands.ini\n"
            "  spiketalk train --config docs/examples/bands.ini --resume bands.ckpt\n"
            "  spiketalk train --config my.ini --check\n");
}

typedef struct {
    cli_progress bar;
    uint32_t epoch, epochs, first_epoch;
} progress_ctx;

static void on_step(const st_train_progress *p, void *user_data)
{
    progress_ctx *c = user_data;
    const double done = (double)(p->epoch - c->first_epoch) + (double)p->step / (double)p->steps;
    char label[128];
    snprintf(label, sizeof label, "epoch %u/%u  loss %.4f  acc %5.1f%%  rate %4.1f%%", p->epoch + 1,
             c->epochs, p->loss, 100 * p->accuracy, 100 * p->rate);
    cli_progress_update(&c->bar, done / (double)(c->epochs - c->first_epoch), label);
}

static st_train_data *make_data(const st_train_config *c, bool valid, int *err)
{
    if (c->generated) {
        if (valid && c->valid_samples == 0) {
            *err = ST_OK;
            return NULL;
        }
        st_train_task_params t = c->task;
        if (valid) {
            t.samples = c->valid_samples;
            t.seed = c->task.seed + 1;
        }
        return st_train_data_generate(&t, err);
    }
    const char *path = valid ? c->valid_path : c->data_path;
    if (!*path) {
        *err = ST_OK;
        return NULL;
    }
    return st_train_data_load(path, err);
}

static size_t count_params(const st_train_model *m)
{
    return st_train_model_param_total(m);
}

static void describe(const st_train_config *c, const st_train_model *m, const st_train_data *d,
                     const st_train_data *v, unsigned threads)
{
    printf("data: %zu samples of up to %zu steps x %zu channels, %s", st_train_data_count(d),
           st_train_data_max_steps(d), st_train_data_channels(d),
           st_train_data_is_seq(d) ? "label sequences" : "one label each");
    if (c->generated)
        printf(" (task %s, seed %llu)", st_train_task_name(c->task.task),
               (unsigned long long)c->task.seed);
    printf("; validation: %zu samples\n", v ? st_train_data_count(v) : 0);
    printf("model: %zu inputs", st_train_model_inputs(m));
    for (size_t l = 0; l < st_train_model_layer_count(m); l++) {
        const st_train_layer_params *L = st_train_model_layer(m, l);
        if (L->kind == ST_TRAIN_DELAY)
            printf(" -> %s (delay %zu)", L->name, st_train_model_layer_size(m, l));
        else
            printf(" -> %s (%s %zu %s%s)", L->name, st_train_layer_kind_name(L->kind),
                   st_train_model_layer_size(m, l), st_snn_model_name(L->neuron.model),
                   L->recurrent ? ", recurrent" : "");
    }
    printf(", %zu parameters\n", count_params(m));
    const st_train_params *p = &c->train;
    printf("training: %u epochs, batch %u (chunks of %u) on %u thread%s; %s lr %g%s; loss %s; "
           "surrogate %s\n", c->epochs, p->batch, p->chunk, threads, threads == 1 ? "" : "s",
           st_train_optimizer_name(p->optimizer), (double)p->lr,
           c->cosine ? " with cosine decay" : "", st_train_loss_name(p->loss),
           st_train_surrogate_name(p->surrogate));
}

int st_cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"resume", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'}, {"seed", required_argument, NULL, 's'},
        {"epochs", required_argument, NULL, 'e'},  {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *config = NULL, *resume = NULL;
    long threads = -1, epochs = -1;
    double seed = -1;
    bool check = false;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "c:r:t:s:e:kh", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'r': resume = optarg; break;
        case 't':
            if (!cli_parse_int("train", "--threads", optarg, 0, 256, &threads))
                return 2;
            break;
        case 's':
            if (!cli_parse_double("train", "--seed", optarg, 0, 9007199254740992.0, &seed))
                return 2;
            break;
        case 'e':
            if (!cli_parse_int("train", "--epochs", optarg, 1, 10000000, &epochs))
                return 2;
            break;
        case 'k': check = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!config || optind < argc) {
        if (optind < argc)
            cli_fail("train", "unexpected argument '%s'", argv[optind]);
        else
            cli_fail("train", "--config FILE is required (see spiketalk train --help)");
        return 2;
    }
    st_train_config c;
    char *text = NULL;
    int rc = st_train_config_load(config, &c, &text);
    if (rc != ST_OK)
        return cli_fail_lib("train", rc, "configuration");
    if (threads >= 0)
        c.train.threads = (unsigned)threads;
    if (seed >= 0)
        c.train.seed = c.init_seed = (uint64_t)seed;
    if (epochs > 0)
        c.epochs = (uint32_t)epochs;

    int status = 1;
    st_train_data *data = NULL, *valid = NULL;
    st_train_model *model = NULL;
    st_train *tr = NULL;
    if (!(data = make_data(&c, false, &rc))) {
        cli_fail_lib("train", rc, "training data");
        goto done;
    }
    valid = make_data(&c, true, &rc);
    if (!valid && rc != ST_OK) {
        cli_fail_lib("train", rc, "validation data");
        goto done;
    }
    model = st_train_model_new(st_train_data_channels(data), c.layers, c.n_layers, c.init_seed,
                               &rc);
    if (!model) {
        cli_fail_lib("train", rc, "model");
        goto done;
    }
    const size_t n = st_train_data_count(data);
    const uint64_t per_epoch = (n + c.train.batch - 1) / c.train.batch;
    c.train.decay_steps = c.cosine ? per_epoch * c.epochs : 0;
    if (!(tr = st_train_new(model, &c.train, &rc))) {
        cli_fail_lib("train", rc, "trainer");
        goto done;
    }
    if ((rc = st_train_check_data(tr, data, "training data")) != ST_OK ||
        (valid && (rc = st_train_check_data(tr, valid, "validation data")) != ST_OK)) {
        cli_fail_lib("train", rc, "data");
        goto done;
    }
    if (resume) {
        if ((rc = st_train_load(tr, resume)) != ST_OK) {
            cli_fail_lib("train", rc, "resume");
            goto done;
        }
        char saved[16384];
        if (st_train_checkpoint_config(resume, saved, sizeof saved) == ST_OK &&
            strcmp(saved, text))
            fprintf(stderr, "spiketalk train: warning: %s was made with another configuration "
                    "text than %s; continuing with %s\n", resume, config, config);
    }
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    describe(&c, model, data, valid,
             c.train.threads ? c.train.threads : (unsigned)(cores > 0 ? cores : 1));
    if (check) {
        printf("configuration OK: nothing trained (--check)\n");
        status = 0;
        goto done;
    }
    const uint32_t first = st_train_epochs_done(tr);
    if (resume)
        printf("resuming from %s after epoch %u (step %llu)\n", resume, first,
               (unsigned long long)st_train_steps_done(tr));
    if (first >= c.epochs)
        printf("the checkpoint has already done %u of %u epochs\n", first, c.epochs);
    printf("%6s %10s %8s %10s %8s %7s %10s %8s\n", "epoch", "loss", "acc", "val_loss", "val_acc",
           "rate", "lr", "time_s");
    progress_ctx pc = {.epochs = c.epochs, .first_epoch = first};
    cli_progress_init(&pc.bar);
    st_train_stats last_valid = {0};
    for (uint32_t e = first; e < c.epochs; e++) {
        const double t0 = st_now_s();
        st_train_stats st, vs = {0};
        if ((rc = st_train_epoch(tr, data, on_step, &pc, &st)) != ST_OK) {
            cli_progress_done(&pc.bar);
            cli_fail_lib("train", rc, "training");
            goto done;
        }
        if (valid && (rc = st_train_evaluate(tr, valid, &vs)) != ST_OK) {
            cli_progress_done(&pc.bar);
            cli_fail_lib("train", rc, "validation");
            goto done;
        }
        const double secs = st_now_s() - t0;
        cli_progress_done(&pc.bar);
        char vl[16] = "-", va[16] = "-";
        if (valid) {
            snprintf(vl, sizeof vl, "%.4f", vs.loss);
            snprintf(va, sizeof va, "%.1f%%", 100 * vs.accuracy);
            last_valid = vs;
        }
        printf("%6u %10.4f %7.1f%% %10s %8s %6.2f%% %10.3g %8.1f\n", e + 1, st.loss,
               100 * st.accuracy, vl, va, 100 * st.rate, st.lr, secs);
        fflush(stdout);
        if (c.log_path[0]) {
            const st_train_log_row row = {.epoch = e + 1,
                                          .steps = st_train_steps_done(tr),
                                          .lr = st.lr,
                                          .train = st,
                                          .valid = vs,
                                          .seconds = secs};
            if ((rc = st_train_log_append(c.log_path, &row)) != ST_OK) {
                cli_fail_lib("train", rc, "log");
                goto done;
            }
        }
        if (c.checkpoint_path[0] && (rc = st_train_save(tr, c.checkpoint_path, text)) != ST_OK) {
            cli_fail_lib("train", rc, "checkpoint");
            goto done;
        }
    }
    if (valid && last_valid.samples)
        printf("validation accuracy %.1f%% (%zu of %zu), loss %.4f\n", 100 * last_valid.accuracy,
               last_valid.correct, last_valid.samples, last_valid.loss);
    if (c.export_path[0]) {
        if ((rc = st_train_export_file(model, c.export_path)) != ST_OK) {
            cli_fail_lib("train", rc, "export");
            goto done;
        }
        printf("wrote %s (engine model file)\n", c.export_path);
    }
    if (c.export_nir_path[0]) {
        if ((rc = st_train_export_nir(model, c.export_nir_path)) != ST_OK) {
            cli_fail_lib("train", rc, "NIR export");
            goto done;
        }
        printf("wrote %s (NIR)\n", c.export_nir_path);
    }
    status = 0;
done:
    st_train_destroy(&tr);
    st_train_model_destroy(&model);
    st_train_data_destroy(&data);
    st_train_data_destroy(&valid);
    free(text);
    return status;
}
